// Contrast's service-mesh sidecar, as a peer for the mixed-mesh test (contrast-peer.test.ts):
// what `service-mesh/` in edgelesssys/contrast does with a pod's mesh env, rebuilt from the
// facts in the shared reference (contrast-mesh.md §2-§4), independently of our own config
// parser and renderers — a peer that shared our code would prove nothing.
//
//   parse the env strings as Contrast does  ->  Envoy bootstrap (protojson shape, static files)
//   ->  iptables mangle TPROXY rules (iptables-legacy, as its image ships)  ->  exec Envoy
//
// Deliberate differences, none on the data path: file paths point at the lab pod's
// directory instead of /contrast/tls-config, and Envoy runs with --disable-hot-restart
// (Contrast's Envoy has a container to itself; here several share one /dev/shm).

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { lineProcess, waitFor, type LineProcess, type MeshLab } from '../../src/demo/index.js'

export const CONTRAST_INGRESS_PORT = 15006
export const CONTRAST_INGRESS_PORT_NO_CLIENT_CERT = 15007

interface IngressEntry {
  readonly name: string
  readonly port: number
  /** `#true`: not redirected at all; `#false`: TLS without a client certificate. */
  readonly disableTls: boolean
}

interface EgressEntry {
  readonly name: string
  readonly listenAddr: string
  readonly listenPort: number
  readonly remoteHost: string
  readonly remotePort: number
}

export interface ContrastSidecarEnv {
  readonly CONTRAST_INGRESS_PROXY_CONFIG?: string
  readonly CONTRAST_EGRESS_PROXY_CONFIG?: string
  readonly CONTRAST_ADMIN_PORT?: string
}

/** Go's strconv.ParseBool, which Contrast uses for the ingress flag. */
function parseGoBool(s: string, entry: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false
  throw new Error(`contrast sidecar: invalid disable TLS: ${s} (entry ${entry})`)
}

/** Splits `##`-joined entries into their `#` parts, skipping empty entries, as Contrast does. */
function entries(value: string): string[][] {
  return value
    .split('##')
    .filter((e) => e !== '')
    .map((e) => {
      const parts = e.split('#')
      if (parts.length !== 3) throw new Error(`contrast sidecar: invalid entry: ${e}`)
      return parts
    })
}

/** The sidecar's view of its env; the admin port adds `##admin#<port>#true` to ingress. */
export function parseContrastEnv(env: ContrastSidecarEnv): { ingress: IngressEntry[]; egress: EgressEntry[]; adminPort?: number } {
  let ingressValue = env.CONTRAST_INGRESS_PROXY_CONFIG ?? ''
  const adminPort = env.CONTRAST_ADMIN_PORT === undefined || env.CONTRAST_ADMIN_PORT === '' ? undefined : Number(env.CONTRAST_ADMIN_PORT)
  if (adminPort !== undefined) ingressValue += `##admin#${adminPort}#true`
  // `DISABLED` (no redirection at all) is not needed by the test and not emulated.
  const ingress = entries(ingressValue).map(([name, port, flag]) => ({ name: name!, port: Number(port), disableTls: parseGoBool(flag!, `${name}#${port}#${flag}`) }))
  const egress = entries(env.CONTRAST_EGRESS_PROXY_CONFIG ?? '').map(([name, listen, remote]) => {
    const l = /^(.+):(\d+)$/.exec(listen!)
    const r = /^(.+):(\d+)$/.exec(remote!)
    if (l === null || r === null) throw new Error(`contrast sidecar: invalid egress entry ${name}#${listen}#${remote}`)
    if (!l[1]!.startsWith('127.')) throw new Error(`contrast sidecar: listen address ${l[1]} is not in local CIDR 127.0.0.1/8`)
    return { name: name!, listenAddr: l[1]!, listenPort: Number(l[2]), remoteHost: r[1]!, remotePort: Number(r[2]) }
  })
  return { ingress, egress, ...(adminPort === undefined ? {} : { adminPort }) }
}

type Json = Record<string, unknown>

const TCP_PROXY = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy'

function tcpProxyChain(chainName: string, filterName: string, statPrefix: string, cluster: string): Json {
  return { name: chainName, filters: [{ name: filterName, typedConfig: { '@type': TCP_PROXY, statPrefix, cluster } }] }
}

/** Static file TLS material; no tls_params, no SAN matcher, no SNI, no ALPN: Envoy's defaults. */
function commonTlsContext(tlsDir: string): Json {
  return {
    tlsCertificates: [{ certificateChain: { filename: join(tlsDir, 'certChain.pem') }, privateKey: { filename: join(tlsDir, 'key.pem') } }],
    validationContext: { trustedCa: { filename: join(tlsDir, 'mesh-ca.pem') } },
  }
}

function ingressListener(name: string, port: number, requireClientCertificate: boolean, tlsDir: string): Json {
  const tls = {
    name: 'envoy.transport_sockets.tls',
    typedConfig: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      commonTlsContext: commonTlsContext(tlsDir),
      requireClientCertificate,
    },
  }
  const chooseChain = (chain: string, action: string): Json => ({
    action: { name: action, typedConfig: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: chain } },
  })
  return {
    name,
    address: { socketAddress: { address: '0.0.0.0', portValue: port } },
    filterChains: [
      { ...tcpProxyChain(name, 'ingress', name, 'IngressCluster'), transportSocket: tls },
      tcpProxyChain('BlackHoleFilter', 'BlackHoleFilter', 'BlackHoleCluster', 'BlackHoleCluster'),
    ],
    // A connection whose original destination is the listener's own port was not
    // redirected: forwarding it to its original destination would loop.
    filterChainMatcher: {
      matcherTree: {
        input: { name: 'port', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput' } },
        exactMatchMap: { map: { [String(port)]: chooseChain('BlackHoleFilter', 'forwardToBlackHoleFilter') } },
      },
      onNoMatch: chooseChain(name, 'forwardToIngress'),
    },
    listenerFilters: [{ name: 'tcpListener', typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst' } }],
    transparent: true,
  }
}

/** The bootstrap Contrast's sidecar writes to /envoy-config.yml (protojson field names). */
export function contrastEnvoyBootstrap(env: ContrastSidecarEnv, tlsDir: string): Json {
  const { egress, adminPort } = parseContrastEnv(env)
  const listeners: Json[] = egress.map((e) => ({
    name: e.name,
    address: { socketAddress: { address: e.listenAddr, portValue: e.listenPort } },
    // Contrast names the egress filter "ingress" too.
    filterChains: [tcpProxyChain(e.name, 'ingress', e.name, e.name)],
  }))
  const clusters: Json[] = egress.map((e) => ({
    name: e.name,
    type: 'LOGICAL_DNS',
    dnsLookupFamily: 'V4_ONLY',
    loadAssignment: {
      clusterName: e.name,
      endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: e.remoteHost, portValue: e.remotePort } } } }] }],
    },
    transportSocket: {
      name: 'envoy.transport_sockets.tls',
      typedConfig: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', commonTlsContext: commonTlsContext(tlsDir) },
    },
  }))
  listeners.push(ingressListener('ingress', CONTRAST_INGRESS_PORT, true, tlsDir))
  listeners.push(ingressListener('ingressWithoutClientAuth', CONTRAST_INGRESS_PORT_NO_CLIENT_CERT, false, tlsDir))
  clusters.push({ name: 'IngressCluster', type: 'ORIGINAL_DST', lbPolicy: 'CLUSTER_PROVIDED', dnsLookupFamily: 'V4_ONLY' })
  clusters.push({ name: 'BlackHoleCluster', type: 'STATIC', connectTimeout: '10s' })
  return {
    ...(adminPort === undefined ? {} : { admin: { address: { socketAddress: { address: '0.0.0.0', portValue: adminPort } } } }),
    staticResources: { listeners, clusters },
  }
}

/**
 * The sidecar's iptables calls (IPv4, mangle table), each an argv without the binary,
 * in Contrast's order: #true entries RETURN and #false entries TPROXY to 15007, in the
 * order they are written; everything else TPROXY to 15006. No policy routing and no
 * mark: the original destination is already local.
 */
export function contrastIptablesRules(env: ContrastSidecarEnv): string[][] {
  const { ingress } = parseContrastEnv(env)
  const m = ['-t', 'mangle']
  return [
    [...m, '-N', 'CONTRAST_INBOUND'],
    [...m, '-N', 'CONTRAST_IN_REDIRECT'],
    [...m, '-A', 'PREROUTING', '-p', 'tcp', '-j', 'CONTRAST_INBOUND'],
    [...m, '-A', 'CONTRAST_INBOUND', '-p', 'tcp', '-i', 'lo', '-j', 'RETURN'],
    [...m, '-A', 'CONTRAST_INBOUND', '-p', 'tcp', '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'RETURN'],
    [...m, '-A', 'CONTRAST_INBOUND', '-p', 'tcp', '-j', 'CONTRAST_IN_REDIRECT'],
    ...ingress.map((e) =>
      e.disableTls
        ? [...m, '-A', 'CONTRAST_IN_REDIRECT', '-p', 'tcp', '--dport', String(e.port), '-j', 'RETURN']
        : [...m, '-A', 'CONTRAST_IN_REDIRECT', '-p', 'tcp', '--dport', String(e.port), '-j', 'TPROXY', '--on-port', String(CONTRAST_INGRESS_PORT_NO_CLIENT_CERT)],
    ),
    [...m, '-A', 'CONTRAST_IN_REDIRECT', '-p', 'tcp', '-j', 'TPROXY', '--on-port', String(CONTRAST_INGRESS_PORT)],
  ]
}

/** Contrast's guest default deny (filter INPUT, IPv4), which the sidecar lifts once its rules are in. */
const DEFAULT_DENY = ['INPUT', '-m', 'conntrack', '!', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'DROP']

/** Contrast's image ships iptables-legacy. */
export const IPTABLES = 'iptables-legacy'

export interface ContrastSidecar {
  readonly envoy: LineProcess
  readonly bootstrapPath: string
  /** Envoy's counters and gauges whose name contains `filter` (admin /stats). */
  stats(filter: string): Promise<Record<string, number>>
}

/**
 * Runs the sidecar in `node`'s namespace in its order: default deny in, iptables rules,
 * default deny out, Envoy. Resolves once Envoy's admin reports LIVE (the env must set
 * CONTRAST_ADMIN_PORT: Contrast's e2e does, and the test reads its TLS counters there).
 */
export async function startContrastSidecar(
  lab: MeshLab,
  node: string,
  env: ContrastSidecarEnv,
  opts: { envoyPath: string; tlsDir: string },
): Promise<ContrastSidecar> {
  const adminPort = parseContrastEnv(env).adminPort
  if (adminPort === undefined) throw new Error('contrast sidecar: the test needs CONTRAST_ADMIN_PORT (readiness and TLS counters)')
  const bootstrapPath = join(lab.workDir, node, 'envoy-config.yml')
  writeFileSync(bootstrapPath, `${JSON.stringify(contrastEnvoyBootstrap(env, opts.tlsDir), null, 2)}\n`, { mode: 0o644 })
  const iptables = async (args: readonly string[]): Promise<void> => {
    const r = await lab.topology.exec(node, IPTABLES, ['-w', ...args])
    if (r.code !== 0) throw new Error(`${IPTABLES} ${args.join(' ')} in ${node}: exit ${r.code}: ${r.stderr.trim()}`)
  }
  await iptables(['-I', ...DEFAULT_DENY])
  for (const rule of contrastIptablesRules(env)) await iptables(rule)
  await iptables(['-D', ...DEFAULT_DENY])
  const child = lab.topology.spawn(node, opts.envoyPath, ['-c', bootstrapPath, '--disable-hot-restart', '--log-level', 'info'])
  const envoy = lineProcess(child, { maxLines: 4_000 })
  const admin = async (path: string): Promise<{ status: number; body: string }> => {
    const script = `fetch('http://127.0.0.1:${adminPort}${path}').then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() })), () => console.log('{"status":0,"body":""}'))`
    const r = await lab.topology.exec(node, process.execPath, ['-e', script])
    try {
      return JSON.parse(r.stdout) as { status: number; body: string }
    } catch {
      return { status: 0, body: r.stderr }
    }
  }
  const exited = (): boolean => envoy.child.exitCode !== null || envoy.child.signalCode !== null
  const live = await waitFor(async () => exited() || (await admin('/ready')).body.trim() === 'LIVE', { timeoutMs: 20_000, intervalMs: 200 })
  if (!live || exited()) throw new Error(`contrast sidecar's Envoy in ${node} is not LIVE; last lines:\n${envoy.lines.slice(-20).join('\n')}`)
  return {
    envoy,
    bootstrapPath,
    async stats(filter) {
      const { body } = await admin(`/stats?filter=${encodeURIComponent(filter)}`)
      const out: Record<string, number> = {}
      for (const line of body.split('\n')) {
        const m = /^(\S+): (\d+)$/.exec(line.trim())
        if (m !== null) out[m[1]!] = Number(m[2])
      }
      return out
    },
  }
}
