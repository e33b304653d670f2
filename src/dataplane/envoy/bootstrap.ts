// Renders the Envoy v3 Bootstrap for a DataPlaneSpec. Pure: no I/O, clock or env;
// object literals are built in a fixed order so JSON.stringify is stable and the
// goldens diff like code.
//
// Layout (names are what Envoy's stats and logs show):
//   listeners  ingress                 [::]:15006 ipv4_compat, transparent, client cert required
//              ingress-no-client-auth  [::]:15007 ipv4_compat, transparent, no client cert
//              egress-capture          [::]:15001 ipv4_compat, transparent, mTLS to original dst
//              egress_<name>_<a>_<p>   127.x.y.z:p, mTLS to host:port with SAN = host
//   clusters   ingress-original-dst    plaintext to the original destination (the workload)
//              egress-original-dst     mTLS to the original destination (transparent egress)
//              egress_<name>_<a>_<p>   one per egress entry
//              black-hole              no endpoints: loop-guard chains end here
//
// One socket per transparent port, `::` with ipv4_compat, rather than a v4 and a v6
// listener: both families share one filter-chain table, and Envoy reports the local
// address of an IPv4 connection on such a socket as plain IPv4 (not ::ffff:a.b.c.d),
// so original_dst and destination_port matching see what nft redirected. It needs
// IPv6 enabled in the guest kernel, which the netfilter ruleset assumes anyway.

import { isIP } from 'node:net'
import { posix } from 'node:path'
import { MESH_SOCKET_MARK, type Port } from '../../config/index.js'
import type {
  DataPlaneSpec,
  EgressCaptureListenerSpec,
  EgressListenerSpec,
  IngressListenerSpec,
  TimeoutsSpec,
} from '../spec.js'
import { TLS_POLICY } from '../spec.js'
import { EnvoyError } from './errors.js'

/** File names inside the SDS directory; one secret per file (Envoy's file SDS takes exactly one). */
export const SDS_FILES = { certificate: 'cert.json', validation: 'ca.json' } as const
/** Secret names; an SDS file whose resource has another name is rejected by Envoy. */
export const SECRET_NAMES = { certificate: 'mesh-cert', validation: 'mesh-ca' } as const

export const TYPE_URLS = {
  bootstrap: 'type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap',
  originalDst: 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  downstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  upstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
  downstreamConnections: 'type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig',
  setFilterState: 'type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config',
  getaddrinfo: 'type.googleapis.com/envoy.extensions.network.dns_resolver.getaddrinfo.v3.GetAddrInfoDnsResolverConfig',
} as const

/** Linux SOL_SOCKET / SO_MARK (asm-generic/socket.h); Envoy takes raw option numbers. */
const SOL_SOCKET = 1
const SO_MARK = 36

/** TLS_POLICY's 1.2 suites; Envoy has no setting for TLS 1.3's. */
export const CIPHER_SUITES = TLS_POLICY.tls12Suites
export const ECDH_CURVES = TLS_POLICY.curves

export const CLUSTERS = {
  ingress: 'ingress-original-dst',
  egressCapture: 'egress-original-dst',
  blackHole: 'black-hole',
} as const

/**
 * Cap on simultaneously open downstream connections across all listeners: the guest has
 * a fixed memory budget and no swap, and Envoy warns at startup when no cap is set.
 */
export const DEFAULT_MAX_CONNECTIONS = 16_384

/**
 * Source addresses of the plaintext hop to the workload (Istio's inbound passthrough
 * binds 127.0.0.6 likewise). A socket bound to a loopback address can only reach an
 * address of this host: Linux refuses to route it anywhere else (IPv4: EINVAL at
 * connect; IPv6: the SYN is dropped, never sent). So whatever original destination a
 * connection claims, the decrypted stream cannot leave the pod.
 */
export const INGRESS_SOURCE = { ipv4: '127.0.0.6', ipv6: '::1' } as const

/** Default idle timeout of a proxied connection (Envoy's own default, made explicit). */
export const DEFAULT_IDLE_TIMEOUT_MS = 3_600_000

export interface RenderOptions {
  /** Absolute directory holding the SDS files (SDS_FILES); Envoy watches it for moves. */
  readonly sdsDir: string
  /** Envoy's own admin interface; always bound to 127.0.0.1. */
  readonly adminPort: number
  /** `node.id` / `node.cluster`; shows up in Envoy's logs. */
  readonly nodeId?: string
  readonly idleTimeoutMs?: number
  readonly maxConnections?: number
}

type Json = Record<string, unknown>

export function renderBootstrap(spec: DataPlaneSpec, opts: RenderOptions): Json {
  checkOptions(spec, opts)
  const ctx: RenderContext = {
    sdsDir: opts.sdsDir,
    timeouts: spec.timeouts,
    idleTimeout: duration(opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS),
    maxConnections: opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
  }
  const listeners: Json[] = []
  const clusters: Json[] = []
  let needsIngressCluster = false
  let needsBlackHole = false
  for (const l of spec.listeners) {
    switch (l.kind) {
      case 'ingress':
        listeners.push(ingressListener(l, ctx))
        needsIngressCluster = true
        needsBlackHole ||= guardPorts(l).length > 0
        break
      case 'egress-capture':
        listeners.push(egressCaptureListener(l, ctx))
        clusters.push(egressCaptureCluster(ctx))
        needsBlackHole ||= guardPorts(l).length > 0
        break
      case 'egress':
        listeners.push(egressListener(l, ctx))
        clusters.push(egressCluster(l, ctx))
        break
    }
  }
  // Fixed cluster order regardless of listener order: ingress first, black hole last.
  if (needsIngressCluster) clusters.unshift(ingressCluster(ctx))
  if (needsBlackHole) clusters.push(blackHoleCluster(ctx))
  const nodeId = opts.nodeId ?? 'podvm-mesh'
  return {
    node: { id: nodeId, cluster: nodeId },
    static_resources: { listeners, clusters },
    admin: {
      address: { socket_address: { address: '127.0.0.1', port_value: opts.adminPort } },
    },
    overload_manager: {
      resource_monitors: [
        {
          name: 'envoy.resource_monitors.global_downstream_max_connections',
          typed_config: {
            '@type': TYPE_URLS.downstreamConnections,
            max_active_downstream_connections: ctx.maxConnections,
          },
        },
      ],
    },
  }
}

interface RenderContext {
  readonly sdsDir: string
  readonly timeouts: TimeoutsSpec
  readonly idleTimeout: string
  readonly maxConnections: number
}

function checkOptions(spec: DataPlaneSpec, opts: RenderOptions): void {
  if (!posix.isAbsolute(opts.sdsDir)) {
    throw new EnvoyError('ENVOY_OPTION', `sdsDir ${JSON.stringify(opts.sdsDir)} is not absolute`, {
      option: 'sdsDir',
      value: opts.sdsDir,
    })
  }
  if (!Number.isInteger(opts.adminPort) || opts.adminPort < 1 || opts.adminPort > 65535) {
    throw new EnvoyError('ENVOY_OPTION', `adminPort ${opts.adminPort} is not a TCP port`, {
      option: 'adminPort',
      value: opts.adminPort,
    })
  }
  // Transparent listeners bind the wildcard address, egress listeners 127.x: either way
  // the admin socket on 127.0.0.1 would collide with a listener on the same port.
  const max = opts.maxConnections
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 1)) {
    throw new EnvoyError('ENVOY_OPTION', `maxConnections ${max} is not a positive integer`, {
      option: 'maxConnections',
      value: max,
    })
  }
  // Guard ports include the daemon's own health/metrics port: Envoy's admin must not take it.
  const clash = spec.listeners.find(
    (l) => l.port === opts.adminPort || (l.kind !== 'egress' && l.loopGuardPorts.includes(opts.adminPort as Port)),
  )
  if (clash !== undefined) {
    throw new EnvoyError('ENVOY_OPTION', `adminPort ${opts.adminPort} is used by listener ${clash.name}`, {
      option: 'adminPort',
      value: opts.adminPort,
      listener: clash.name,
    })
  }
}

/** Protobuf JSON Duration: whole or fractional seconds with an `s` suffix. */
function duration(ms: number): string {
  const whole = Math.floor(ms / 1000)
  const frac = ms % 1000
  return frac === 0 ? `${whole}s` : `${whole}.${String(frac).padStart(3, '0')}s`
}

function guardPorts(l: IngressListenerSpec | EgressCaptureListenerSpec): number[] {
  // Duplicate destination_port matches make Envoy reject the listener.
  return [...new Set<number>(l.loopGuardPorts)].sort((a, b) => a - b)
}

function sdsSecret(ctx: RenderContext, which: 'certificate' | 'validation'): Json {
  return {
    name: SECRET_NAMES[which],
    sds_config: {
      path_config_source: {
        path: posix.join(ctx.sdsDir, SDS_FILES[which]),
        // Renewal and CA rotation rename a new file into place; a directory watch sees
        // the move, a watch on the file itself would follow the replaced inode.
        watched_directory: { path: ctx.sdsDir },
      },
      resource_api_version: 'V3',
      // Wait for the secret however long it takes: a listener without its certificate
      // must stay warming (not accepting), never serve without TLS material.
      initial_fetch_timeout: '0s',
    },
  }
}

function tlsParams(): Json {
  return {
    tls_minimum_protocol_version: 'TLSv1_2',
    tls_maximum_protocol_version: 'TLSv1_3',
    cipher_suites: [...CIPHER_SUITES],
    ecdh_curves: [...ECDH_CURVES],
  }
}

const MARK_OPTION: Json = {
  description: 'SO_MARK: mesh-originated, exempt from capture',
  level: SOL_SOCKET,
  name: SO_MARK,
  int_value: MESH_SOCKET_MARK,
  state: 'STATE_PREBIND',
}

/**
 * SO_MARK on every upstream socket so the ruleset never captures the mesh's own traffic.
 * A bind config with socket options but no source_address needs Envoy >= 1.25.
 */
function markedBindConfig(): Json {
  return { socket_options: [MARK_OPTION] }
}

/**
 * Envoy's default circuit breakers cap each cluster at 1024 connections and 1024 pending
 * connects, far below the downstream cap, and the two ingress listeners share one
 * cluster: the 1025th concurrent connection would be refused. The global downstream cap
 * (overload manager) is the one bound, as in Istio, so the cluster limits follow it.
 */
function circuitBreakers(ctx: RenderContext): Json {
  const n = ctx.maxConnections
  return { thresholds: [{ priority: 'DEFAULT', max_connections: n, max_pending_requests: n, max_requests: n }] }
}

/**
 * `afterHandshake`: connect upstream only once the downstream TLS handshake is done
 * (client certificate verified). Envoy's default connects on accept, so the app would
 * see an (empty) connection for every attempt, an outsider's too. No early data is
 * buffered meanwhile: nothing is read before the handshake anyway.
 */
function tcpProxy(statPrefix: string, cluster: string, ctx: RenderContext, opts: { readonly afterHandshake?: boolean } = {}): Json {
  const typed: Json = {
    '@type': TYPE_URLS.tcpProxy,
    stat_prefix: statPrefix,
    cluster,
    idle_timeout: ctx.idleTimeout,
  }
  if (opts.afterHandshake === true) {
    typed['upstream_connect_mode'] = 'ON_DOWNSTREAM_TLS_HANDSHAKE'
    typed['max_early_data_bytes'] = 0
  }
  return { name: 'envoy.filters.network.tcp_proxy', typed_config: typed }
}

function originalDstFilter(): Json {
  return {
    name: 'envoy.filters.listener.original_dst',
    typed_config: { '@type': TYPE_URLS.originalDst },
  }
}

function transparentAddress(port: number): Json {
  return { socket_address: { address: '::', port_value: port, ipv4_compat: true } }
}

/**
 * One chain per guarded port, matched on the original destination port: a connection
 * addressed to a mesh port itself would otherwise be proxied back into the mesh.
 */
function loopGuardChains(listener: string, ports: number[], ctx: RenderContext): Json[] {
  return ports.map((port) => ({
    name: `loop-guard-${port}`,
    filter_chain_match: { destination_port: port },
    filters: [tcpProxy(loopGuardStatPrefix(listener), CLUSTERS.blackHole, ctx)],
  }))
}

// Loopback destinations, plain and IPv4-mapped: the pod's, but never from the network (a
// host routing 127/8 to the pod, with route_localnet set, would reach services bound to
// loopback to stay off it). The ruleset drops them; this chain is the second layer.
const LOOPBACK_PREFIXES: Json[] = [
  { address_prefix: '127.0.0.0', prefix_len: 8 },
  { address_prefix: '::ffff:127.0.0.0', prefix_len: 104 },
  { address_prefix: '::1', prefix_len: 128 },
]

function loopbackGuardChain(listener: string, ctx: RenderContext): Json {
  return {
    name: 'loopback-guard',
    filter_chain_match: { prefix_ranges: LOOPBACK_PREFIXES },
    filters: [tcpProxy(notLocalStatPrefix(listener), CLUSTERS.blackHole, ctx)],
  }
}

/** tcp_proxy stat prefix of a listener's loopback-guard chain (counted as NOT_LOCAL failures). */
export function notLocalStatPrefix(listener: string): string {
  return `${listener}.not-local`
}

/** tcp_proxy stat prefix of a listener's loop-guard chains (counted as LOOP failures). */
export function loopGuardStatPrefix(listener: string): string {
  return `${listener}.loop-guard`
}

function ingressListener(l: IngressListenerSpec, ctx: RenderContext): Json {
  const common: Json = {
    tls_params: tlsParams(),
    tls_certificate_sds_secret_configs: [sdsSecret(ctx, 'certificate')],
  }
  // Without a validation context Envoy does not even request a client certificate,
  // which is what `name#port#false` promises (e.g. kubelet probes over HTTPS).
  if (l.requireClientCert) common['validation_context_sds_secret_config'] = sdsSecret(ctx, 'validation')
  const tls = {
    '@type': TYPE_URLS.downstreamTls,
    common_tls_context: common,
    require_client_certificate: l.requireClientCert,
  }
  return {
    name: l.name,
    address: transparentAddress(l.port),
    stat_prefix: l.name,
    filter_chains: [
      ...loopGuardChains(l.name, guardPorts(l), ctx),
      loopbackGuardChain(l.name, ctx),
      {
        name: `${l.name}-tls`,
        filters: [tcpProxy(l.name, CLUSTERS.ingress, ctx, { afterHandshake: true })],
        transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: tls },
        transport_socket_connect_timeout: duration(ctx.timeouts.handshakeMs),
      },
    ],
    transparent: true,
    listener_filters: [originalDstFilter()],
    traffic_direction: 'INBOUND',
  }
}

function egressCaptureListener(l: EgressCaptureListenerSpec, ctx: RenderContext): Json {
  return {
    name: l.name,
    address: transparentAddress(l.port),
    stat_prefix: l.name,
    filter_chains: [
      ...loopGuardChains(l.name, guardPorts(l), ctx),
      { name: `${l.name}-mtls`, filters: [upstreamSanIsDestination(), tcpProxy(l.name, CLUSTERS.egressCapture, ctx)] },
    ],
    transparent: true,
    listener_filters: [originalDstFilter()],
    traffic_direction: 'OUTBOUND',
  }
}

/**
 * Secure naming for transparent egress: the server must carry the original destination
 * IP as a SAN. The connection's local address is that destination (original_dst), and
 * this filter state makes the upstream TLS handshake require it as a SAN, on top of the
 * chain to the mesh CA (as the builtin data plane checks).
 */
function upstreamSanIsDestination(): Json {
  return {
    name: 'envoy.filters.network.set_filter_state',
    typed_config: {
      '@type': TYPE_URLS.setFilterState,
      on_new_connection: [
        {
          object_key: 'envoy.network.upstream_subject_alt_names',
          format_string: { text_format_source: { inline_string: '%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%' } },
        },
      ],
    },
  }
}

/**
 * Listener and cluster name of an egress entry. No `:` in it: Envoy rewrites `:` to `_`
 * in stat names, so the stats would not be found under the resource's name.
 */
export function egressResourceName(l: EgressListenerSpec): string {
  return `egress_${l.name}_${l.address}_${l.port}`
}

function egressListener(l: EgressListenerSpec, ctx: RenderContext): Json {
  const name = egressResourceName(l)
  return {
    name,
    address: { socket_address: { address: l.address, port_value: l.port } },
    stat_prefix: name,
    filter_chains: [{ filters: [tcpProxy(name, name, ctx)] }],
    traffic_direction: 'OUTBOUND',
  }
}

function ingressCluster(ctx: RenderContext): Json {
  // Plaintext to the workload at the address nft redirected from, from a loopback
  // source (INGRESS_SOURCE: it cannot leave the pod); marked, so this hop over lo is
  // not captured again.
  return {
    name: CLUSTERS.ingress,
    type: 'ORIGINAL_DST',
    connect_timeout: duration(ctx.timeouts.connectMs),
    lb_policy: 'CLUSTER_PROVIDED',
    circuit_breakers: circuitBreakers(ctx),
    upstream_bind_config: {
      source_address: { address: INGRESS_SOURCE.ipv4, port_value: 0 },
      // Envoy takes the source whose family matches the destination's.
      extra_source_addresses: [
        {
          address: { address: INGRESS_SOURCE.ipv6, port_value: 0 },
          socket_options: { socket_options: [MARK_OPTION] },
        },
      ],
      socket_options: [MARK_OPTION],
    },
  }
}

function egressCaptureCluster(ctx: RenderContext): Json {
  // mTLS to the original destination; upstreamSanIsDestination() on the listener adds
  // the per-connection SAN check (the destination IP) to the CA check here.
  return {
    name: CLUSTERS.egressCapture,
    type: 'ORIGINAL_DST',
    connect_timeout: duration(ctx.timeouts.connectMs),
    lb_policy: 'CLUSTER_PROVIDED',
    circuit_breakers: circuitBreakers(ctx),
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': TYPE_URLS.upstreamTls,
        common_tls_context: {
          tls_params: tlsParams(),
          tls_certificate_sds_secret_configs: [sdsSecret(ctx, 'certificate')],
          validation_context_sds_secret_config: sdsSecret(ctx, 'validation'),
        },
      },
    },
    upstream_bind_config: markedBindConfig(),
  }
}

function egressCluster(l: EgressListenerSpec, ctx: RenderContext): Json {
  const name = egressResourceName(l)
  const ipHost = isIP(l.upstream.host) !== 0
  const tls = {
    '@type': TYPE_URLS.upstreamTls,
    common_tls_context: {
      tls_params: tlsParams(),
      tls_certificate_sds_secret_configs: [sdsSecret(ctx, 'certificate')],
      // Static SAN matcher + CA from SDS: the CA rotates through the file, the name is
      // fixed by the measured config. Both must hold (secure naming: DNS is not trusted).
      combined_validation_context: {
        // No SAN matcher only for an entry configured meshCaOnly (the daemon warns).
        default_validation_context:
          l.verifyName === undefined
            ? {}
            : {
                match_typed_subject_alt_names: [
                  ipHost ? { san_type: 'IP_ADDRESS', matcher: { exact: l.verifyName } } : dnsSanLiteral(l.verifyName),
                ],
              },
        validation_context_sds_secret_config: sdsSecret(ctx, 'validation'),
      },
    },
    // RFC 6066: SNI carries host names only, never IP literals.
    // Without an absolute name's trailing dot: SNI carries the name, not the DNS query.
    ...(ipHost ? {} : { sni: l.upstream.host.replace(/\.$/, '') }),
  }
  const endpoint = { socket_address: { address: l.upstream.host, port_value: l.upstream.port } }
  return {
    name,
    // An IP needs no resolver; a name is resolved per new connection (LOGICAL_DNS), as
    // a Kubernetes Service name should be, rather than load-balanced over all answers.
    type: ipHost ? 'STATIC' : 'LOGICAL_DNS',
    connect_timeout: duration(ctx.timeouts.connectMs),
    lb_policy: 'ROUND_ROBIN',
    circuit_breakers: circuitBreakers(ctx),
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: endpoint } }] }],
    },
    // A name that does not resolve yet must not hold Envoy's start: a LOGICAL_DNS cluster
    // otherwise blocks initialization (no LIVE, so the mesh never gets ready and the pod
    // stays closed) until its first answer. Unresolved, its connections fail, as builtin's.
    ...(ipHost ? {} : { dns_lookup_family: 'V4_PREFERRED', typed_dns_resolver_config: getaddrinfoResolver(), wait_for_warm_on_init: false }),
    transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: tls },
    upstream_bind_config: markedBindConfig(),
  }
}

/**
 * A DNS SAN equal to `name`, compared literally (case-insensitively). Envoy's `exact`
 * matcher for a DNS SAN follows wildcard semantics: `*.mesh.test` in a certificate
 * would answer for `db.mesh.test`. Mesh certificates name workloads exactly, and the
 * builtin data plane refuses wildcards too, so this is an anchored regex instead.
 */
function dnsSanLiteral(name: string): Json {
  const escaped = name.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&')
  return { san_type: 'DNS', matcher: { safe_regex: { regex: `(?i)^${escaped}$` } } }
}

/**
 * libc's resolver, per lookup: it follows /etc/resolv.conf when that changes (glibc
 * re-reads it), while Envoy's default c-ares resolver reads it once at start, and in a
 * pod VM the resolver is configured by kata-agent, possibly after Envoy started.
 */
function getaddrinfoResolver(): Json {
  return { name: 'envoy.network.dns_resolver.getaddrinfo', typed_config: { '@type': TYPE_URLS.getaddrinfo } }
}

function blackHoleCluster(ctx: RenderContext): Json {
  // No endpoints: tcp_proxy finds no healthy host and closes the connection at once.
  return {
    name: CLUSTERS.blackHole,
    type: 'STATIC',
    connect_timeout: duration(ctx.timeouts.connectMs),
    load_assignment: { cluster_name: CLUSTERS.blackHole, endpoints: [] },
  }
}
