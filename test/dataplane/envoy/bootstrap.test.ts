import { describe, it, expect } from 'vitest'
import type { MeshConfig, Port } from '../../../src/config/types.js'
import { MESH_SOCKET_MARK } from '../../../src/config/types.js'
import { deriveSpec } from '../../../src/dataplane/spec.js'
import { renderBootstrap, SDS_FILES, type RenderOptions } from '../../../src/dataplane/envoy/bootstrap.js'
import { thrown } from '../../support.js'
import { validateMessage } from './schema.js'

const p = (n: number) => n as Port
const OPTS: RenderOptions = { sdsDir: '/run/podvm-mesh/sds', adminPort: 15000 }

const BASE: MeshConfig = {
  ingress: { enabled: true, rules: [] },
  egress: [],
  transparentEgress: { enabled: false, allowPlaintext: [] },
  admin: { port: p(15020), exposed: false },
}

// A case is the base config plus a mutation (istio's run_test.go pattern).
const CASES: Record<string, MeshConfig> = {
  default: BASE,
  'ingress-exceptions': {
    ...BASE,
    ingress: {
      enabled: true,
      rules: [
        { name: 'metrics', port: p(9090), mode: 'passthrough' },
        { name: 'probe', port: p(8443), mode: 'tls' },
      ],
    },
  },
  disabled: {
    ...BASE,
    ingress: { enabled: false, rules: [] },
    egress: [{ name: 'web', listen: { address: '127.137.0.3', port: p(8081) }, remote: { host: 'web-svc', port: p(443) } }],
  },
  egress: {
    ...BASE,
    egress: [
      { name: 'emoji', listen: { address: '127.137.0.1', port: p(8081) }, remote: { host: 'emoji-svc', port: p(8080) } },
      { name: 'voting', listen: { address: '127.137.0.2', port: p(8081) }, remote: { host: 'voting-svc.default.svc.cluster.local', port: p(8080) } },
      { name: 'db4', listen: { address: '127.137.0.3', port: p(5432) }, remote: { host: '10.0.0.7', port: p(5432) } },
      { name: 'db6', listen: { address: '127.137.0.4', port: p(5432) }, remote: { host: 'fd00::7', port: p(5432) } },
    ],
  },
  'transparent-egress': {
    ...BASE,
    transparentEgress: { enabled: true, allowPlaintext: [{ cidr: '10.96.0.0/12', family: 4 }] },
  },
  'admin-exposed': {
    ...BASE,
    ingress: { enabled: true, rules: [{ name: 'admin', port: p(9901), mode: 'passthrough' }] },
    admin: { port: p(9901), exposed: true },
  },
}

type J = any
const render = (c: MeshConfig, o: RenderOptions = OPTS): J => renderBootstrap(deriveSpec(c), o)
const listener = (b: J, name: string): J => b.static_resources.listeners.find((l: J) => l.name === name)
const cluster = (b: J, name: string): J => b.static_resources.clusters.find((c: J) => c.name === name)
const names = (xs: J[]): string[] => xs.map((x) => x.name)
const guardPortsOf = (l: J): number[] =>
  l.filter_chains.filter((c: J) => c.filter_chain_match?.destination_port !== undefined).map((c: J) => c.filter_chain_match.destination_port)

describe('renderBootstrap goldens', () => {
  it.each(Object.keys(CASES))('%s', async (name) => {
    const b = render(CASES[name]!)
    expect(validateMessage('envoy.config.bootstrap.v3.Bootstrap', b)).toEqual([])
    await expect(`${JSON.stringify(b, null, 2)}\n`).toMatchFileSnapshot(`golden/${name}.json`)
  })
})

describe('renderBootstrap', () => {
  it('is pure and stable: same input, byte-identical output', () => {
    expect(JSON.stringify(render(CASES['egress']!))).toBe(JSON.stringify(render(CASES['egress']!)))
  })

  it('default: two transparent dual-stack ingress listeners, client cert only on 15006', () => {
    const b = render(BASE)
    expect(names(b.static_resources.listeners)).toEqual(['ingress', 'ingress-no-client-auth'])
    for (const [name, port, requireCert] of [['ingress', 15006, true], ['ingress-no-client-auth', 15007, false]] as const) {
      const l = listener(b, name)
      expect(l.address.socket_address).toEqual({ address: '::', port_value: port, ipv4_compat: true })
      expect(l.transparent).toBe(true)
      expect(l.listener_filters.map((f: J) => f.name)).toEqual(['envoy.filters.listener.original_dst'])
      const tlsChain = l.filter_chains.find((c: J) => c.filter_chain_match === undefined)
      const tls = tlsChain.transport_socket.typed_config
      expect(tls.require_client_certificate).toBe(requireCert)
      expect('validation_context_sds_secret_config' in tls.common_tls_context).toBe(requireCert)
      expect(tls.common_tls_context.tls_params.tls_minimum_protocol_version).toBe('TLSv1_2')
      expect(tls.common_tls_context.tls_params.tls_maximum_protocol_version).toBe('TLSv1_3')
      expect(tlsChain.transport_socket_connect_timeout).toBe('10s')
      expect(tlsChain.filters[0].typed_config.cluster).toBe('ingress-original-dst')
    }
    expect(names(b.static_resources.clusters)).toEqual(['ingress-original-dst', 'black-hole'])
  })

  it('loop guard: own port, every mesh port and the admin port go to the black hole', () => {
    const b = render(BASE)
    for (const name of ['ingress', 'ingress-no-client-auth']) {
      const l = listener(b, name)
      expect(guardPortsOf(l)).toEqual([15001, 15006, 15007, 15020])
      for (const c of l.filter_chains.filter((c: J) => c.filter_chain_match !== undefined)) {
        expect(c.filters[0].typed_config.cluster).toBe('black-hole')
        expect(c.transport_socket).toBeUndefined()
      }
    }
    expect(cluster(b, 'black-hole').load_assignment.endpoints).toEqual([])
  })

  it('loopback destinations (127/8, mapped, ::1) go to the black hole on every ingress listener, counted as NOT_LOCAL', () => {
    const b = render(BASE)
    for (const name of ['ingress', 'ingress-no-client-auth']) {
      const chain = listener(b, name).filter_chains.find((c: J) => c.filter_chain_match?.prefix_ranges !== undefined)
      expect(chain.filter_chain_match).toEqual({
        prefix_ranges: [
          { address_prefix: '127.0.0.0', prefix_len: 8 },
          { address_prefix: '::ffff:127.0.0.0', prefix_len: 104 },
          { address_prefix: '::1', prefix_len: 128 },
        ],
      })
      expect(chain.filters[0].typed_config).toMatchObject({ cluster: 'black-hole', stat_prefix: `${name}.not-local` })
      expect(chain.transport_socket).toBeUndefined()
    }
  })

  it('marks every upstream socket with SO_MARK 0x50d, and only the black hole has none', () => {
    const b = render(CASES['egress']!)
    const t = render(CASES['transparent-egress']!)
    for (const c of [...b.static_resources.clusters, ...t.static_resources.clusters]) {
      if (c.name === 'black-hole') continue
      expect(c.upstream_bind_config.socket_options).toEqual([
        expect.objectContaining({ level: 1, name: 36, int_value: MESH_SOCKET_MARK, state: 'STATE_PREBIND' }),
      ])
    }
  })

  it('ingress cluster: ORIGINAL_DST with CLUSTER_PROVIDED, plaintext', () => {
    const c = cluster(render(BASE), 'ingress-original-dst')
    expect(c).toMatchObject({ type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '10s' })
    expect(c.transport_socket).toBeUndefined()
  })

  it('#true ports do not appear in Envoy at all; #false ports need nothing either (nft sends them to 15007)', () => {
    const text = JSON.stringify(render(CASES['ingress-exceptions']!))
    expect(text).not.toContain('9090')
    expect(text).not.toContain('8443')
    expect(JSON.stringify(render(CASES['ingress-exceptions']!))).toBe(JSON.stringify(render(BASE)))
  })

  it('DISABLED: no ingress listeners and no ingress cluster, egress still served', () => {
    const b = render(CASES['disabled']!)
    expect(names(b.static_resources.listeners)).toEqual(['egress_web_127.137.0.3_8081'])
    expect(names(b.static_resources.clusters)).toEqual(['egress_web_127.137.0.3_8081'])
  })

  it('egress: one loopback listener and one mTLS cluster per entry, SNI + SAN = host', () => {
    const b = render(CASES['egress']!)
    const expected = [
      ['egress_emoji_127.137.0.1_8081', '127.137.0.1', 8081, 'emoji-svc', 8080, 'DNS', 'LOGICAL_DNS'],
      ['egress_voting_127.137.0.2_8081', '127.137.0.2', 8081, 'voting-svc.default.svc.cluster.local', 8080, 'DNS', 'LOGICAL_DNS'],
      ['egress_db4_127.137.0.3_5432', '127.137.0.3', 5432, '10.0.0.7', 5432, 'IP_ADDRESS', 'STATIC'],
      ['egress_db6_127.137.0.4_5432', '127.137.0.4', 5432, 'fd00::7', 5432, 'IP_ADDRESS', 'STATIC'],
    ] as const
    expect(names(b.static_resources.listeners)).toEqual(['ingress', 'ingress-no-client-auth', ...expected.map((e) => e[0])])
    for (const [name, addr, port, host, hostPort, sanType, type] of expected) {
      const l = listener(b, name)
      expect(l.address.socket_address).toEqual({ address: addr, port_value: port })
      expect(l.transparent).toBeUndefined()
      expect(l.filter_chains[0].filters[0].typed_config.cluster).toBe(name)
      const c = cluster(b, name)
      expect(c.type).toBe(type)
      expect(c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address).toEqual({ address: host, port_value: hostPort })
      const tls = c.transport_socket.typed_config
      expect(tls['@type']).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext')
      expect(tls.sni).toBe(sanType === 'DNS' ? host : undefined)
      const v = tls.common_tls_context.combined_validation_context
      // DNS: an anchored literal regex, not `exact` (which Envoy applies with wildcard semantics).
      const matcher = sanType === 'DNS' ? { safe_regex: { regex: `(?i)^${host.replaceAll('.', '\\.')}$` } } : { exact: host }
      expect(v.default_validation_context.match_typed_subject_alt_names).toEqual([{ san_type: sanType, matcher }])
      expect(c.circuit_breakers.thresholds[0].max_connections).toBe(16_384)
      // An unresolvable name must not hold Envoy's start (and with it the pod's readiness).
      expect(c.wait_for_warm_on_init).toBe(type === 'LOGICAL_DNS' ? false : undefined)
      expect(v.validation_context_sds_secret_config.name).toBe('mesh-ca')
      expect(tls.common_tls_context.tls_certificate_sds_secret_configs[0].name).toBe('mesh-cert')
    }
  })

  it('an absolute egress host is resolved with its dot, sent as SNI and matched without it; meshCaOnly drops the SAN matcher', () => {
    const egress = (e: Partial<MeshConfig['egress'][number]>) => ({
      ...BASE,
      egress: [{ name: 'db', listen: { address: '127.137.0.9', port: p(5432) }, remote: { host: 'db.ns.svc.cluster.local', port: p(5432), absolute: true as const }, ...e }],
    })
    const named = render(egress({})).static_resources.clusters.find((c: J) => c.name.startsWith('egress_db'))
    expect(named.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address).toBe('db.ns.svc.cluster.local.')
    const tls = named.transport_socket.typed_config
    expect(tls.sni).toBe('db.ns.svc.cluster.local')
    expect(tls.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names).toEqual([
      { san_type: 'DNS', matcher: { safe_regex: { regex: '(?i)^db\\.ns\\.svc\\.cluster\\.local$' } } },
    ])
    const anyMember = render(egress({ meshCaOnly: true })).static_resources.clusters.find((c: J) => c.name.startsWith('egress_db'))
    const v = anyMember.transport_socket.typed_config.common_tls_context.combined_validation_context
    expect(v.default_validation_context).toEqual({})
    expect(v.validation_context_sds_secret_config.name).toBe('mesh-ca')
  })

  it('ingress: the plaintext hop is bound to a loopback source (cannot leave the pod), marked, and not capped at 1024', () => {
    const c = cluster(render(BASE), 'ingress-original-dst')
    expect(c.upstream_bind_config.source_address).toEqual({ address: '127.0.0.6', port_value: 0 })
    expect(c.upstream_bind_config.extra_source_addresses[0].address).toEqual({ address: '::1', port_value: 0 })
    expect(c.upstream_bind_config.socket_options[0]).toMatchObject({ level: 1, name: 36 })
    expect(c.upstream_bind_config.extra_source_addresses[0].socket_options.socket_options[0]).toMatchObject({ level: 1, name: 36 })
    expect(c.circuit_breakers.thresholds[0]).toMatchObject({ max_connections: 16_384, max_pending_requests: 16_384 })
  })

  it('resource names carry no `:` (Envoy rewrites it to `_` in stat names)', () => {
    const b = render(CASES['egress']!)
    for (const r of [...b.static_resources.listeners, ...b.static_resources.clusters]) expect(r.name).not.toContain(':')
  })

  it('transparent egress: 15001 capture listener with loop guard and an mTLS ORIGINAL_DST cluster', () => {
    const b = render(CASES['transparent-egress']!)
    const l = listener(b, 'egress-capture')
    expect(l.address.socket_address).toEqual({ address: '::', port_value: 15001, ipv4_compat: true })
    expect(l.transparent).toBe(true)
    expect(guardPortsOf(l)).toEqual([15001, 15006, 15007, 15020])
    const c = cluster(b, 'egress-original-dst')
    expect(c).toMatchObject({ type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED' })
    const ctx = c.transport_socket.typed_config.common_tls_context
    expect(ctx.validation_context_sds_secret_config.name).toBe('mesh-ca')
    expect(ctx.tls_certificate_sds_secret_configs[0].name).toBe('mesh-cert')
    // Per connection, the destination IP becomes a required SAN of the upstream certificate.
    const mtls = l.filter_chains.at(-1).filters
    expect(mtls.map((f: J) => f.name)).toEqual(['envoy.filters.network.set_filter_state', 'envoy.filters.network.tcp_proxy'])
    expect(mtls[0].typed_config.on_new_connection).toEqual([
      {
        object_key: 'envoy.network.upstream_subject_alt_names',
        format_string: { text_format_source: { inline_string: '%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%' } },
      },
    ])
    // The allow-list is nft's business: plaintext destinations never reach Envoy.
    expect(JSON.stringify(b)).not.toContain('10.96.0.0')
  })

  it('admin exposed: the admin port is an ordinary destination (not loop-guarded), Envoy admin stays on 127.0.0.1', () => {
    expect(guardPortsOf(listener(render(BASE), 'ingress'))).toEqual([15001, 15006, 15007, 15020])
    const b = render(CASES['admin-exposed']!)
    expect(guardPortsOf(listener(b, 'ingress'))).toEqual([15001, 15006, 15007])
    expect(b.admin.address.socket_address).toEqual({ address: '127.0.0.1', port_value: 15000 })
  })

  it('secrets come from file SDS in sdsDir, watched by directory, waiting without timeout', () => {
    const b = render(BASE, { ...OPTS, sdsDir: '/x/sds' })
    const tls = listener(b, 'ingress').filter_chains.at(-1).transport_socket.typed_config.common_tls_context
    expect(tls.tls_certificate_sds_secret_configs[0].sds_config).toEqual({
      path_config_source: { path: `/x/sds/${SDS_FILES.certificate}`, watched_directory: { path: '/x/sds' } },
      resource_api_version: 'V3',
      initial_fetch_timeout: '0s',
    })
    expect(tls.validation_context_sds_secret_config.sds_config.path_config_source.path).toBe(`/x/sds/${SDS_FILES.validation}`)
  })

  it('caps downstream connections globally (overload manager)', () => {
    const rm = (b: J) => b.overload_manager.resource_monitors
    expect(rm(render(BASE))).toEqual([
      expect.objectContaining({ name: 'envoy.resource_monitors.global_downstream_max_connections', typed_config: expect.objectContaining({ max_active_downstream_connections: 16384 }) }),
    ])
    expect(rm(render(BASE, { ...OPTS, maxConnections: 500 }))[0].typed_config.max_active_downstream_connections).toBe(500)
  })

  it('timeouts come from the spec', () => {
    const spec = deriveSpec(BASE, { handshakeMs: 2500, connectMs: 750, certificateWaitMs: 1, drainMs: 1 })
    const b: J = renderBootstrap(spec, { ...OPTS, idleTimeoutMs: 60_000 })
    const chain = listener(b, 'ingress').filter_chains.at(-1)
    expect(chain.transport_socket_connect_timeout).toBe('2.500s')
    expect(chain.filters[0].typed_config.idle_timeout).toBe('60s')
    expect(cluster(b, 'ingress-original-dst').connect_timeout).toBe('0.750s')
    expect(validateMessage('envoy.config.bootstrap.v3.Bootstrap', b)).toEqual([])
  })

  it.each([
    [{ sdsDir: 'relative/sds', adminPort: 15000 }, { option: 'sdsDir', value: 'relative/sds' }],
    [{ sdsDir: '/sds', adminPort: 0 }, { option: 'adminPort', value: 0 }],
    [{ sdsDir: '/sds', adminPort: 15006 }, { option: 'adminPort', value: 15006, listener: 'ingress' }],
    [{ sdsDir: '/sds', adminPort: 15000, maxConnections: 0 }, { option: 'maxConnections', value: 0 }],
    // The daemon's own health port (a loop-guard port) is taken too.
    [{ sdsDir: '/sds', adminPort: 15020 }, { option: 'adminPort', value: 15020, listener: 'ingress' }],
  ])('rejects options %j', (opts, details) => {
    expect(thrown(() => render(BASE, opts))).toMatchObject({ code: 'ENVOY_OPTION', details })
  })
})
