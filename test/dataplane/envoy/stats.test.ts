import { describe, it, expect } from 'vitest'
import type { MeshConfig, Port } from '../../../src/config/types.js'
import { deriveSpec } from '../../../src/dataplane/spec.js'
import { renderBootstrap } from '../../../src/dataplane/envoy/bootstrap.js'
import { thrown } from '../../support.js'
import { addStats, parseEnvoyStats, statsFromEnvoy } from '../../../src/dataplane/envoy/stats.js'

const CONFIG: MeshConfig = {
  ingress: { enabled: true, rules: [] },
  egress: [{ name: 'web', listen: { address: '127.137.0.3', port: 8081 as Port }, remote: { host: 'web-svc', port: 443 as Port } }],
  transparentEgress: { enabled: true, allowPlaintext: [] },
  admin: { port: 15020 as Port, exposed: false },
}
const SPEC = deriveSpec(CONFIG)
const W = 'egress_web_127.137.0.3_8081'

const COUNTERS = new Map<string, number>([
  ['listener.ingress.downstream_cx_total', 10],
  ['listener.ingress.downstream_cx_active', 2],
  ['listener.ingress.ssl.handshake', 7],
  ['listener.ingress.ssl.connection_error', 1],
  ['listener.ingress.ssl.fail_verify_no_cert', 2],
  ['listener.ingress-no-client-auth.downstream_cx_total', 4],
  ['listener.ingress-no-client-auth.ssl.handshake', 4],
  ['tcp.ingress.downstream_cx_rx_bytes_total', 1000],
  ['tcp.ingress.downstream_cx_tx_bytes_total', 2000],
  ['tcp.ingress.loop-guard.downstream_cx_total', 3],
  ['tcp.ingress.not-local.downstream_cx_total', 2],
  ['tcp.ingress-no-client-auth.downstream_cx_rx_bytes_total', 5],
  ['cluster.ingress-original-dst.upstream_cx_connect_fail', 1],
  [`listener.${W}.downstream_cx_total`, 6],
  [`listener.${W}.downstream_cx_active`, 1],
  [`tcp.${W}.downstream_cx_rx_bytes_total`, 300],
  [`tcp.${W}.downstream_cx_tx_bytes_total`, 400],
  [`cluster.${W}.ssl.handshake`, 5],
  [`cluster.${W}.ssl.fail_verify_san`, 1],
  [`cluster.${W}.upstream_cx_connect_fail`, 2],
  ['listener.egress-capture.downstream_cx_total', 8],
  ['cluster.egress-original-dst.ssl.handshake', 8],
  ['cluster.egress-original-dst.ssl.fail_verify_error', 1],
  ['unrelated.counter', 99],
])

describe('statsFromEnvoy', () => {
  it('maps Envoy counters to DataPlaneStats by listener', () => {
    expect(statsFromEnvoy(SPEC, COUNTERS)).toEqual({
      connectionsAccepted: { ingress: 10, 'ingress-no-client-auth': 4, 'egress-capture': 8, web: 6 },
      connectionsActive: 3,
      handshakesCompleted: { ingress: 7, 'ingress-no-client-auth': 4, 'egress-capture': 8, web: 5 },
      // The ingress cluster is shared by two listeners and counted once.
      failures: { TLS_HANDSHAKE: 1, NO_CLIENT_CERT: 2, CERT_VERIFY: 1, LOOP: 3, NOT_LOCAL: 2, UPSTREAM_CONNECT: 3, SAN_MISMATCH: 1 },
      bytesIn: 1305,
      bytesOut: 2400,
    })
  })

  it('uses the stat prefixes the bootstrap actually sets', () => {
    const b: any = renderBootstrap(SPEC, { sdsDir: '/sds', adminPort: 15000 })
    const prefixes = b.static_resources.listeners.map((l: any) => l.stat_prefix)
    expect(prefixes).toEqual(['ingress', 'ingress-no-client-auth', 'egress-capture', W])
    const tcp = b.static_resources.listeners.flatMap((l: any) => l.filter_chains.map((c: any) => c.filters[0].typed_config.stat_prefix))
    expect(tcp).toContain('ingress.loop-guard')
    expect(tcp).toContain('ingress.not-local')
    expect(tcp).toContain(W)
  })

  it('parses the admin JSON, skipping histograms and junk', () => {
    const m = parseEnvoyStats(JSON.stringify({ stats: [{ name: 'a', value: 1 }, { name: 'b', value: 'x' }, { histograms: {} }, null] }))
    expect([...m]).toEqual([['a', 1]])
    // Not Envoy's stats document: an error, never "no counters" (which would zero the
    // metrics and make a draining Envoy look idle).
    for (const body of ['not json', 'null', '{}', '{"stats":{}}']) {
      expect(thrown(() => parseEnvoyStats(body)), body).toMatchObject({ code: 'ENVOY_ADMIN' })
    }
  })

  it('addStats sums counters and keeps the newer gauge', () => {
    const a = statsFromEnvoy(SPEC, COUNTERS)
    const sum = addStats(a, { ...a, connectionsActive: 0 })
    expect(sum.connectionsAccepted['ingress']).toBe(20)
    expect(sum.failures['LOOP']).toBe(6)
    expect(sum.bytesIn).toBe(2610)
    expect(sum.connectionsActive).toBe(0)
  })
})
