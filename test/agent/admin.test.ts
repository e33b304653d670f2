import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { startAdminServer } from '../../src/agent/admin-server.js'
import { createRootLogger } from '../../src/logger.js'
import { renderMetrics } from '../../src/agent/metrics.js'
import type { Port } from '../../src/config/index.js'
import { logSink } from '../support.js'

const STATS = {
  connectionsAccepted: { ingress: 3, 'ingress-no-client-auth': 1 },
  connectionsActive: 2,
  handshakesCompleted: { ingress: 2 },
  failures: { NO_CLIENT_CERT: 1 },
  bytesIn: 100,
  bytesOut: 250,
}

describe('renderMetrics', () => {
  it('renders counters by label, in stable order, with HELP and TYPE', () => {
    const text = renderMetrics(STATS, {
      ready: true,
      state: 'ready',
      startedAt: new Date(1_000_000),
      certificateReloads: 2,
      certificateNotAfter: new Date(2_000_000),
    })
    expect(text).toContain('# TYPE podvm_mesh_connections_accepted_total counter')
    expect(text).toContain('podvm_mesh_connections_accepted_total{listener="ingress"} 3\npodvm_mesh_connections_accepted_total{listener="ingress-no-client-auth"} 1')
    expect(text).toMatch(/^podvm_mesh_failures_total\{reason="NO_CLIENT_CERT"\} 1$/m)
    expect(text).toMatch(/^podvm_mesh_bytes_total\{direction="out"\} 250$/m)
    expect(text).toMatch(/^podvm_mesh_ready 1$/m)
    expect(text).toMatch(/^podvm_mesh_certificate_expiry_seconds 2000$/m)
    expect(text.endsWith('\n')).toBe(true)
  })

  it('escapes label values', () => {
    const text = renderMetrics({ ...STATS, failures: { 'a"b\\c': 1 } }, { ready: false, state: 'baseline', startedAt: new Date(0), certificateReloads: 0 })
    expect(text).toContain('podvm_mesh_failures_total{reason="a\\"b\\\\c"} 1')
    expect(text).toMatch(/^podvm_mesh_ready 0$/m)
    expect(text).not.toContain('certificate_expiry')
  })

  it('renders the pending gauge and the flood bounds\' failure reasons when the data plane reports them', () => {
    const gauges = { ready: true, state: 'ready', startedAt: new Date(0), certificateReloads: 1 }
    expect(renderMetrics(STATS, gauges)).not.toContain('connections_pending')
    const text = renderMetrics({ ...STATS, connectionsPending: 7, failures: { PENDING_PER_SOURCE: 5, PENDING_SHED: 2 } }, gauges)
    expect(text).toContain('# TYPE podvm_mesh_connections_pending gauge')
    expect(text).toMatch(/^podvm_mesh_connections_pending 7$/m)
    expect(text).toContain('podvm_mesh_failures_total{reason="PENDING_PER_SOURCE"} 5\npodvm_mesh_failures_total{reason="PENDING_SHED"} 2')
  })
})

describe('admin endpoint', () => {
  it('answers /healthz, /readyz (503 until ready) and /metrics on loopback', async () => {
    let ready = false
    const admin = await startAdminServer(
      { port: 0 as Port, exposed: false },
      { healthy: () => true, ready: () => ready, status: () => ({ state: ready ? 'ready' : 'baseline' }), metrics: () => 'podvm_mesh_ready 0\n' },
      pino({ level: 'silent' }),
    )
    try {
      expect(admin.address.address).toBe('127.0.0.1')
      const base = `http://127.0.0.1:${admin.address.port}`
      expect((await fetch(`${base}/readyz`)).status).toBe(503)
      ready = true
      const r = await fetch(`${base}/readyz`)
      expect(r.status).toBe(200)
      expect(await r.json()).toEqual({ state: 'ready' })
      expect((await fetch(`${base}/healthz`)).status).toBe(200)
      const m = await fetch(`${base}/metrics`)
      expect(m.headers.get('content-type')).toContain('text/plain')
      expect(await m.text()).toBe('podvm_mesh_ready 0\n')
      // Contrast documents /stats/prometheus (its Envoy admin path) for scraping.
      const p = await fetch(`${base}/stats/prometheus`)
      expect(p.status).toBe(200)
      expect(await p.text()).toBe('podvm_mesh_ready 0\n')
      expect((await fetch(`${base}/nope`)).status).toBe(404)
      expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405)
    } finally {
      await admin.close()
    }
  })
})

describe('createRootLogger', () => {
  it('never writes key material, whatever object carries it', () => {
    const sink = logSink()
    const log = createRootLogger({ destination: sink })
    log.child({ component: 'pki' }).info({ material: { key: '-----BEGIN PRIVATE KEY-----' }, key: 'secret' }, 'loaded')
    const line = JSON.stringify(sink.records)
    expect(line).not.toContain('BEGIN PRIVATE KEY')
    expect(line).not.toContain('secret')
    expect(sink.records[0]).toMatchObject({ component: 'pki', msg: 'loaded', level: 'info' })
  })

  it('MESH_TRACE turns only the named components to trace', () => {
    const sink = logSink()
    const log = createRootLogger({ destination: sink, trace: 'ttrpc' })
    log.child({ component: 'ttrpc' }).trace('frame')
    log.child({ component: 'dataplane' }).trace('chunk')
    log.child({ component: 'dataplane' }).info('listening')
    expect(sink.records.map((r) => r['msg'])).toEqual(['frame', 'listening'])
  })
})
