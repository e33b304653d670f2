// The Envoy data plane with the real Envoy, without namespaces: an explicit egress
// listener on a loopback address, mTLS to a TLS server on 127.0.0.1 that requires a
// mesh client certificate. What only a running Envoy can show: its circuit breakers
// (Envoy's default caps a cluster at 1024 connections) and the stat names the metrics
// are read from (Envoy rewrites `:` in them). Needs root (SO_MARK on upstream sockets).

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { createServer, type Server } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import type { MeshConfig, Port } from '../../../src/config/types.js'
import { deriveSpec } from '../../../src/dataplane/spec.js'
import { EnvoyDataPlane } from '../../../src/dataplane/envoy/dataplane.js'
import { createTestPki } from '../../fixtures/pki.js'
import { envoyForTests } from '../../envoy-support.js'

const ENVOY = envoyForTests()
const notRoot = process.getuid?.() !== 0 ? 'needs root (SO_MARK on Envoy upstream sockets)' : undefined
if (notRoot !== undefined && process.env['CI'] === 'true') throw new Error(`required under CI=true: ${notRoot}`)
const skip = ENVOY.skip ?? notRoot
const LISTEN = { address: '127.0.0.61', port: 19061 as Port }
/** Above Envoy's default per-cluster cap (1024 connections, 1024 pending). */
const CONCURRENT = 1100

describe.skipIf(skip !== undefined)(`the Envoy data plane, real Envoy on loopback${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string
  let server: Server
  let plane: EnvoyDataPlane
  const sockets: Socket[] = []

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'envoy-run-'))
    const pki = await createTestPki('envoy-run')
    const serverLeaf = await pki.issue({ dns: ['localhost'] })
    const clientLeaf = await pki.issue({ dns: ['client.mesh.test'] })
    server = createServer({
      cert: serverLeaf.chainPem,
      key: serverLeaf.keyPem,
      ca: pki.meshCa.certPem,
      requestCert: true,
      rejectUnauthorized: true,
    }, (s) => {
      s.on('error', () => {})
      s.pipe(s)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as { port: number }).port as Port
    const config: MeshConfig = {
      ingress: { enabled: false, rules: [] },
      egress: [{ name: 'cap', listen: LISTEN, remote: { host: 'localhost', port } }],
      transparentEgress: { enabled: false, allowPlaintext: [] },
      admin: { port: 15920 as Port, exposed: false },
    }
    plane = new EnvoyDataPlane(deriveSpec(config), {
      log: pino({ level: 'silent' }),
      workDir: join(dir, 'work'),
      adminPort: 15931,
      envoyPath: ENVOY.path!,
      statsIntervalMs: 0,
    })
    await plane.start()
    plane.setCredentials(pki.material(clientLeaf))
    await plane.whenLive(AbortSignal.timeout(30_000))
  }, 60_000)

  afterAll(async () => {
    for (const s of sockets) s.destroy()
    await plane?.close()
    await new Promise((r) => server?.close(r))
    rmSync(dir, { recursive: true, force: true })
  }, 30_000)

  it(`${CONCURRENT} concurrent connections through one egress cluster all get through (no 1024 cap)`, async () => {
    const one = (i: number): Promise<boolean> =>
      new Promise((resolve) => {
        const s = connect({ host: LISTEN.address, port: LISTEN.port })
        sockets.push(s)
        const t = setTimeout(() => resolve(false), 20_000)
        s.on('error', () => (clearTimeout(t), resolve(false)))
        s.on('close', () => (clearTimeout(t), resolve(false)))
        s.once('data', () => (clearTimeout(t), resolve(true)))
        s.write(`hello ${i}\n`)
      })
    // All held open at once: the echo arrives only once the upstream connection exists.
    const results: boolean[] = []
    for (let i = 0; i < CONCURRENT; i += 100) {
      results.push(...(await Promise.all(Array.from({ length: Math.min(100, CONCURRENT - i) }, (_, k) => one(i + k)))))
    }
    expect(results.filter((ok) => !ok).length).toBe(0)
    const stats = await plane.refreshStats()
    expect(stats.connectionsActive).toBeGreaterThanOrEqual(CONCURRENT)
  }, 120_000)

  it('metrics read the egress entry from Envoy’s stats: connections, handshakes, bytes', async () => {
    const stats = await plane.refreshStats()
    expect(stats.connectionsAccepted['cap']).toBeGreaterThanOrEqual(CONCURRENT)
    expect(stats.handshakesCompleted['cap']).toBeGreaterThanOrEqual(1)
    expect(stats.bytesIn).toBeGreaterThan(0)
    expect(stats.bytesOut).toBeGreaterThan(0)
    expect(stats.failures).toEqual({})
  })
})
