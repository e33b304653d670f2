import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import type { MeshConfig, Port } from '../../../src/config/types.js'
import { deriveSpec, type TimeoutsSpec } from '../../../src/dataplane/spec.js'
import { EnvoyDataPlane, type EnvoyDataPlaneOptions } from '../../../src/dataplane/envoy/dataplane.js'
import { SDS_FILES } from '../../../src/dataplane/envoy/bootstrap.js'
import { readTlsDir } from '../../../src/pki/index.js'
import { logSink, rejected, thrown } from '../../support.js'
import { FakeEnvoy } from './fake-envoy.js'
import { validateMessage } from './schema.js'

const CONFIG: MeshConfig = {
  ingress: { enabled: true, rules: [] },
  egress: [],
  transparentEgress: { enabled: false, allowPlaintext: [] },
  admin: { port: 15020 as Port, exposed: false },
}
const TIMEOUTS: TimeoutsSpec = { handshakeMs: 1000, connectMs: 1000, certificateWaitMs: 1000, drainMs: 200 }
const VECTORS = join(import.meta.dirname, 'vectors')
const MATERIAL = (await readTlsDir(join(VECTORS, 'gen1'))).material
const GEN2 = (await readTlsDir(join(VECTORS, 'gen2'))).material

let dir: string
let fake: FakeEnvoy
let sink: ReturnType<typeof logSink>
const planes: EnvoyDataPlane[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'envoy-sup-'))
  fake = new FakeEnvoy(dir)
  sink = logSink()
})
afterEach(async () => {
  for (const p of planes.splice(0)) p.destroy()
  // Give SIGKILLed fakes a moment before their directory goes away.
  await sleep(50)
  rmSync(dir, { recursive: true, force: true })
})

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function plane(over: Partial<EnvoyDataPlaneOptions> = {}, timeouts: Partial<TimeoutsSpec> = {}): Promise<EnvoyDataPlane> {
  const p = new EnvoyDataPlane(deriveSpec(CONFIG, { ...TIMEOUTS, ...timeouts }), {
    log: pino({ level: 'trace' }, sink),
    workDir: join(dir, 'work'),
    adminPort: await freePort(),
    envoyPath: fake.path,
    backoff: { initialMs: 40, maxMs: 160, resetAfterMs: 60_000 },
    killGraceMs: 300,
    ...over,
  })
  planes.push(p)
  return p
}

const logs = (component: string) => sink.records.filter((r) => r['component'] === component)

describe('EnvoyDataPlane', () => {
  it('start() writes a valid bootstrap and waits for credentials before spawning Envoy', async () => {
    const p = await plane()
    const seen: string[] = []
    p.onStateChange((a, b) => seen.push(`${a} -> ${b}`))
    await p.start()
    expect(p.state).toBe('listening')
    const bootstrap = JSON.parse(readFileSync(join(dir, 'work', 'bootstrap.json'), 'utf8'))
    expect(validateMessage('envoy.config.bootstrap.v3.Bootstrap', bootstrap)).toEqual([])
    await sleep(50)
    expect(fake.records()).toEqual([])

    p.setCredentials(MATERIAL)
    expect(p.state).toBe('serving')
    await until('start record', () => fake.events('start').length === 1)
    const start = fake.events('start')[0]!
    const argv = start.argv!
    const after = (flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined)
    expect(after('-c')).toBe(join(dir, 'work', 'bootstrap.json'))
    expect(after('--log-format')).toBe('[%l][%n] %v')
    expect(after('--log-level')).toBe('info')
    expect(after('--drain-time-s')).toBe('1')
    expect(argv).toEqual(expect.arrayContaining(['--log-format-escaped', '--disable-hot-restart']))
    expect(argv).not.toContain('--concurrency') // Envoy's own default unless told
    // Both secret files were in place when Envoy loaded its config.
    expect(start.sds).toEqual([
      { path: join(dir, 'work', 'sds', SDS_FILES.validation), exists: true },
      { path: join(dir, 'work', 'sds', SDS_FILES.certificate), exists: true },
    ])
    await p.close()
    expect(seen).toEqual(['created -> listening', 'listening -> serving', 'serving -> draining', 'draining -> closed'])
  })

  it('--envoy-concurrency reaches Envoy as --concurrency', async () => {
    const p = await plane({ concurrency: 1 })
    p.setCredentials(MATERIAL)
    await p.start()
    await until('start record', () => fake.events('start').length === 1)
    const argv = fake.events('start')[0]!.argv!
    expect(argv[argv.indexOf('--concurrency') + 1]).toBe('1')
  })

  it('credentials given before start() are written and served at start()', async () => {
    const p = await plane()
    p.setCredentials(MATERIAL)
    expect(p.state).toBe('created')
    await p.start()
    expect(p.state).toBe('serving')
    await until('start record', () => fake.events('start').length === 1)
    expect(fake.events('start')[0]!.sds!.every((s) => s.exists)).toBe(true)
  })

  it('credentials given while start() runs are written before Envoy is spawned', async () => {
    const p = await plane()
    const starting = p.start()
    p.setCredentials(MATERIAL) // state created, start() under way
    await starting
    expect(p.state).toBe('serving')
    await until('start record', () => fake.events('start').length === 1)
    expect(fake.events('start')[0]!.sds!.every((s) => s.exists)).toBe(true)
  })

  it('surfaces each Envoy stderr line through pino with its parsed level', async () => {
    const p = await plane()
    await p.start()
    p.setCredentials(MATERIAL)
    await until('three envoy lines', () => logs('envoy').length >= 3)
    const lines = logs('envoy').map((r) => ({ level: r['level'], envoyLogger: r['envoyLogger'], msg: r['msg'], continued: r['continued'] }))
    expect(lines.slice(0, 3)).toEqual([
      { level: 30, envoyLogger: 'main', msg: 'initializing epoch 0 (fake)', continued: undefined },
      { level: 40, envoyLogger: 'config', msg: 'deprecated option in use', continued: undefined },
      // An unprefixed continuation keeps the level of the line it continues.
      { level: 40, envoyLogger: 'config', msg: '  second line of the warning', continued: true },
    ])
    expect(logs('envoy').every((r) => r['pid'] === p.pid)).toBe(true)
  })

  it('restarts a crashing Envoy with capped exponential backoff, and stops restarting on close()', async () => {
    fake.control({ mode: 'crash', exitCode: 3 })
    const p = await plane()
    await p.start()
    p.setCredentials(MATERIAL)
    await until('5 starts', () => fake.events('start').length >= 5)
    await p.close()
    const starts = fake.events('start').map((r) => r.t)
    const gaps = starts.slice(1, 5).map((t, i) => t - starts[i]!)
    const expected = [40, 80, 160, 160]
    gaps.forEach((g, i) => expect(g).toBeGreaterThanOrEqual(expected[i]!))
    const restarts = logs('dataplane').filter((r) => r['msg'] === 'envoy exited unexpectedly; restarting')
    expect(restarts.slice(0, 4).map((r) => [r['exitCode'], r['restartInMs']])).toEqual(expected.map((d) => [3, d]))
    expect(logs('envoy').some((r) => r['level'] === 60 && r['envoyLogger'] === 'backtrace')).toBe(true)
    const count = fake.events('start').length
    await sleep(300)
    expect(fake.events('start').length).toBe(count)
    expect(p.state).toBe('closed')
  })

  it('close(): drains listeners through the admin API, waits drainMs while connections are active, then SIGTERM', async () => {
    fake.control({ mode: 'serve', stats: { 'listener.ingress.downstream_cx_active': 1 } })
    const p = await plane()
    await p.start()
    p.setCredentials(MATERIAL)
    await until('admin up', () => fake.events('start').length === 1)
    await sleep(150) // the fake's admin server listens right after the start record
    const pid = p.pid!
    const before = Date.now()
    await p.close()
    const [drain] = fake.events('drain')
    const [term] = fake.events('sigterm')
    expect(drain?.url).toBe('/drain_listeners?inboundonly') // egress keeps serving to the end
    expect(term).toBeDefined()
    expect(term!.t - drain!.t).toBeGreaterThanOrEqual(TIMEOUTS.drainMs - 5)
    expect(drain!.t).toBeGreaterThanOrEqual(before - 5)
    expect(alive(pid)).toBe(false)
    expect(p.state).toBe('closed')
    expect(fake.events('start')).toHaveLength(1)
  })

  it('close(): with no connection left on any listener the drain ends early, without waiting drainMs out', async () => {
    fake.control({ mode: 'serve', stats: { 'listener.ingress.downstream_cx_active': 0 } })
    // A drain period no test run would sit out: close() returns only because Envoy is idle.
    const p = await plane({}, { drainMs: 600_000 })
    await p.start()
    p.setCredentials(MATERIAL)
    await until('admin up', () => fake.events('start').length === 1)
    await sleep(150)
    await p.close()
    expect(fake.events('drain')).toHaveLength(1)
    expect(fake.events('sigterm')).toHaveLength(1)
    expect(logs('dataplane').some((r) => r['msg'] === 'no connection left; drain over')).toBe(true)
  })

  it('close(): SIGKILL when Envoy ignores SIGTERM for killGraceMs', async () => {
    fake.control({ mode: 'serve', ignoreTerm: true, stats: { 'listener.ingress.downstream_cx_active': 1 } })
    const p = await plane()
    await p.start()
    p.setCredentials(MATERIAL)
    await until('start', () => fake.events('start').length === 1)
    await sleep(150)
    const pid = p.pid!
    const t0 = Date.now()
    await p.close()
    expect(Date.now() - t0).toBeGreaterThanOrEqual(TIMEOUTS.drainMs + 300 - 10)
    expect(fake.events('sigterm')).toHaveLength(1)
    expect(alive(pid)).toBe(false)
    expect(logs('dataplane').some((r) => r['msg'] === 'envoy ignored SIGTERM; killing')).toBe(true)
  })

  it('setCredentials while serving replaces the SDS files by rename, without restarting Envoy', async () => {
    const p = await plane()
    await p.start()
    p.setCredentials(MATERIAL)
    await until('start', () => fake.events('start').length === 1)
    const certPath = join(dir, 'work', 'sds', SDS_FILES.certificate)
    const caPath = join(dir, 'work', 'sds', SDS_FILES.validation)
    const inode = statSync(certPath).ino
    // Mesh-CA rotation: the bundle trusts both CAs while the new leaf comes from the new one.
    const bundle = MATERIAL.meshCa + GEN2.meshCa
    p.setCredentials({ ...GEN2, meshCa: bundle })
    expect(statSync(certPath).ino).not.toBe(inode)
    const cert = JSON.parse(readFileSync(certPath, 'utf8')).resources[0].tls_certificate
    expect(cert).toEqual({ certificate_chain: { inline_string: GEN2.certChain }, private_key: { inline_string: GEN2.key } })
    expect(JSON.parse(readFileSync(caPath, 'utf8')).resources[0].validation_context.trusted_ca.inline_string).toBe(bundle)
    await sleep(100)
    expect(fake.events('start')).toHaveLength(1)
    expect(p.state).toBe('serving')
  })

  it('refuses TLS material Envoy would refuse, keeping the files it has', async () => {
    const p = await plane()
    await p.start()
    p.setCredentials(MATERIAL)
    const certPath = join(dir, 'work', 'sds', SDS_FILES.certificate)
    const before = readFileSync(certPath, 'utf8')
    const err = thrown(() => p.setCredentials({ ...MATERIAL, key: GEN2.key }))
    expect(err).toMatchObject({ code: 'DATAPLANE_CREDENTIALS' })
    expect(err.details.reason).toMatch(/key/i)
    expect(thrown(() => p.setCredentials({ ...MATERIAL, meshCa: 'not a certificate' }))).toMatchObject({
      code: 'DATAPLANE_CREDENTIALS',
      details: { field: 'meshCa' },
    })
    expect(readFileSync(certPath, 'utf8')).toBe(before)
    expect(p.state).toBe('serving')
  })

  it('close() and destroy() are idempotent; calls after close fail typed', async () => {
    const p = await plane()
    await p.start()
    p.setCredentials(MATERIAL)
    const a = p.close()
    const b = p.close()
    expect(a).toBe(b)
    await a
    p.destroy()
    await p.close()
    expect(p.state).toBe('closed')
    expect(thrown(() => p.setCredentials(MATERIAL))).toMatchObject({ code: 'DATAPLANE_STATE', details: { op: 'setCredentials', state: 'closed' } })
    expect(await rejected(p.start())).toMatchObject({ code: 'DATAPLANE_STATE', details: { op: 'start', state: 'closed' } })
  })

  it('close() before any credentials: nothing was spawned, closes at once', async () => {
    const p = await plane()
    await p.start()
    await p.close()
    expect(p.state).toBe('closed')
    expect(fake.records()).toEqual([])
  })

  it('during a drain: rotation reaches the SDS files; destroy() kills Envoy at once, close() resolves, nothing restarts', async () => {
    // A drain far longer than the test may take, over a connection that stays active:
    // only destroy() can end it in time.
    fake.control({ mode: 'serve', stats: { 'listener.ingress.downstream_cx_active': 1 } })
    const p = await plane({ killGraceMs: 600_000, statsIntervalMs: 20 }, { drainMs: 600_000 })
    await p.start()
    p.setCredentials(MATERIAL)
    await until('start', () => fake.events('start').length === 1)
    await sleep(150)
    const pid = p.pid!
    const closing = p.close()
    await until('drain asked', () => fake.events('drain').length === 1)
    p.setCredentials(GEN2)
    const cert = JSON.parse(readFileSync(join(dir, 'work', 'sds', SDS_FILES.certificate), 'utf8')).resources[0].tls_certificate
    expect(cert.certificate_chain.inline_string).toBe(GEN2.certChain)
    expect(alive(pid)).toBe(true)
    p.destroy()
    expect(p.state).toBe('closed')
    await closing
    expect(alive(pid)).toBe(false)
    expect(fake.events('sigterm')).toEqual([])
    await sleep(200)
    expect(fake.events('start')).toHaveLength(1)
  })

  it('destroy() kills Envoy at once', async () => {
    const p = await plane()
    await p.start()
    p.setCredentials(MATERIAL)
    await until('start', () => fake.events('start').length === 1)
    const pid = p.pid!
    p.destroy(new Error('test'))
    expect(p.state).toBe('closed')
    await until('process gone', () => !alive(pid))
    expect(fake.events('sigterm')).toEqual([])
  })

  it('a missing envoy binary is logged as ENVOY_SPAWN and retried with backoff', async () => {
    const p = await plane({ envoyPath: join(dir, 'no-such-envoy') })
    await p.start()
    p.setCredentials(MATERIAL)
    expect(p.healthy()).toBe(true)
    await until('3 spawn attempts', () => p.starts >= 3)
    // Crash-looping: /healthz goes 503 (it stayed 200 while Envoy never came up).
    await until('unhealthy', () => !p.healthy())
    expect(p.live).toBe(false)
    const failures = logs('dataplane').filter((r) => r['code'] === 'ENVOY_SPAWN')
    expect(failures.length).toBeGreaterThanOrEqual(2)
    expect(failures.slice(0, 2).map((r) => r['restartInMs'])).toEqual([40, 80])
    await p.close()
    expect(p.state).toBe('closed')
  })

  it('a spawn that throws (not an error event) is handled like a failed spawn: logged, retried, unhealthy', async () => {
    // A NUL byte makes spawn() throw synchronously, as ENOMEM or E2BIG from fork/exec do.
    const p = await plane({ extraArgs: ['bad\0arg'] })
    p.setCredentials(MATERIAL)
    await p.start()
    expect(p.state).toBe('serving')
    await until('3 spawn attempts', () => p.starts >= 3)
    await until('unhealthy', () => !p.healthy())
    const failures = logs('dataplane').filter((r) => r['code'] === 'ENVOY_SPAWN')
    expect(failures.slice(0, 2).map((r) => r['restartInMs'])).toEqual([40, 80])
    await p.close()
    expect(p.state).toBe('closed')
  })

  it('stats(): scraped from the admin API, monotonic across an Envoy restart', async () => {
    fake.control({ mode: 'serve', stats: { 'listener.ingress.downstream_cx_total': 5, 'tcp.ingress.downstream_cx_rx_bytes_total': 100 } })
    const p = await plane({ statsIntervalMs: 0 })
    expect(p.stats().connectionsAccepted).toEqual({})
    await p.start()
    p.setCredentials(MATERIAL)
    await until('start', () => fake.events('start').length === 1)
    await sleep(150)
    expect((await p.refreshStats()).connectionsAccepted['ingress']).toBe(5)
    expect(p.stats().bytesIn).toBe(100)
    // The first Envoy dies; the next one starts counting from zero again.
    process.kill(p.pid!, 'SIGKILL')
    fake.control({ mode: 'serve', stats: { 'listener.ingress.downstream_cx_total': 2 } })
    await until('restart', () => fake.events('start').length === 2)
    await sleep(150)
    const s = await p.refreshStats()
    expect(s.connectionsAccepted['ingress']).toBe(7)
    expect(s.bytesIn).toBe(100)
  })

  it('whenLive(): polls admin /ready until Envoy reports LIVE; live and healthy follow', async () => {
    fake.control({ mode: 'serve', readyAfterMs: 300 })
    const p = await plane()
    await p.start()
    const waiting = p.whenLive()
    let live = false
    void waiting.then(() => (live = true))
    await sleep(100)
    expect(live).toBe(false) // no credentials, no Envoy yet
    p.setCredentials(MATERIAL)
    await until('start', () => fake.events('start').length === 1)
    expect(p.live).toBe(false)
    expect(p.healthy()).toBe(true)
    await waiting
    expect(p.live).toBe(true)
    expect(Date.now() - fake.events('start')[0]!.t).toBeGreaterThanOrEqual(300 - 5)
  })

  it('whenLive(): rejects on abort and when closed', async () => {
    const p = await plane()
    await p.start()
    const ac = new AbortController()
    const aborted = p.whenLive(ac.signal)
    ac.abort(new Error('enough'))
    expect((await rejected(aborted)).message).toBe('enough')
    const closed = p.whenLive()
    await p.close()
    expect(await rejected(closed)).toMatchObject({ code: 'DATAPLANE_STATE', details: { state: 'closed' } })
  })

  it('a bad option fails start() typed, before anything is written', async () => {
    const p = await plane({ adminPort: 15006 })
    expect(await rejected(p.start())).toMatchObject({ code: 'ENVOY_OPTION', details: { option: 'adminPort', listener: 'ingress' } })
    expect(existsSync(join(dir, 'work', 'bootstrap.json'))).toBe(false)
    expect(p.state).toBe('created')
  })
})
