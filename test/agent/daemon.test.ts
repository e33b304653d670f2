import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MeshDaemon, type DaemonState } from '../../src/agent/daemon.js'
import { meshConfigFromStrings } from '../../src/config/index.js'
import type { DataPlane, DataPlaneState, TlsMaterial } from '../../src/dataplane/index.js'
import type { Runner } from '../../src/netfilter/index.js'
import { generateKeyPair, writeTlsDir } from '../../src/pki/index.js'
import { createAuthority, issueLeaf } from '../../src/pki/issuing.js'
import { logSink, rejected } from '../support.js'

/** Records every command and every data-plane call in one timeline. */
function fakes(opts: { failNft?: (script: string) => boolean } = {}) {
  const timeline: string[] = []
  const runner: Runner = {
    async run(cmd, args, o) {
      if (cmd === 'nft') {
        const script = o?.input ?? ''
        const which = script.includes('baseline') ? 'baseline' : 'final'
        if (opts.failNft?.(script)) return { code: 1, stdout: '', stderr: 'Error: syntax error' }
        timeline.push(`nft ${which}`)
        return { code: 0, stdout: '', stderr: '' }
      }
      if (cmd === 'ip' && args.includes('show')) return { code: 0, stdout: '[]', stderr: '' }
      return { code: 0, stdout: '', stderr: '' }
    },
  }
  let state: DataPlaneState = 'created'
  const credentials: TlsMaterial[] = []
  const dataPlane: DataPlane = {
    get state() {
      return state
    },
    onStateChange: () => () => undefined,
    async start() {
      timeline.push('dataplane start')
      state = 'listening'
    },
    setCredentials(m) {
      timeline.push('dataplane credentials')
      credentials.push(m)
      state = 'serving'
    },
    stats: () => ({ connectionsAccepted: {}, connectionsActive: 0, handshakesCompleted: {}, failures: {}, bytesIn: 0, bytesOut: 0 }),
    refreshStats: async () => dataPlane.stats(),
    get live() {
      return state === 'serving'
    },
    healthy: () => state !== 'closed',
    async whenLive() {
      timeline.push('dataplane live')
    },
    async close() {
      timeline.push('dataplane close')
      state = 'closed'
    },
    destroy() {
      state = 'closed'
    },
  }
  return { timeline, runner, dataPlane, credentials }
}

async function writeCertificates(dir: string): Promise<void> {
  const ca = await createAuthority({ commonName: 'daemon test CA' })
  const kp = await generateKeyPair()
  const leaf = await issueLeaf(ca, { sans: ['b.mesh'], publicKey: kp.keys.publicKey })
  await writeTlsDir(dir, { meshCa: ca.certificatePem, certChain: leaf.certificatePem, key: kp.privateKeyPem })
}

describe('MeshDaemon', () => {
  let dir: string
  const config = meshConfigFromStrings({})
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pm-daemon-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('boots in order: baseline, listeners, certificates, final ruleset — and tells each transition', async () => {
    await writeCertificates(dir)
    const f = fakes()
    const daemon = new MeshDaemon({ config, tlsDir: dir, dataPlane: f.dataPlane, runner: f.runner, log: pino({ level: 'silent' }) })
    const seen: [DaemonState, DaemonState][] = []
    daemon.onTransition((from, to) => seen.push([from, to]))
    await daemon.start()
    await new Promise((r) => setImmediate(r))
    expect(f.timeline).toEqual(['nft baseline', 'dataplane start', 'dataplane credentials', 'dataplane live', 'nft final'])
    expect(seen).toEqual([
      ['created', 'baseline'],
      ['baseline', 'waiting-certificates'],
      ['waiting-certificates', 'ready'],
    ])
    expect(daemon.certificate?.subject).toBe('CN=b.mesh')
    await daemon.stop()
  })

  it('installs the final ruleset only once the data plane is live (Envoy binds after loading secrets)', async () => {
    await writeCertificates(dir)
    const f = fakes()
    let goLive!: () => void
    const live = new Promise<void>((r) => (goLive = r))
    const dataPlane: DataPlane = Object.assign(Object.create(f.dataPlane) as DataPlane, { whenLive: () => live })
    const daemon = new MeshDaemon({ config, tlsDir: dir, dataPlane, runner: f.runner, log: pino({ level: 'silent' }) })
    const started = daemon.start()
    await new Promise((r) => setTimeout(r, 100))
    expect(f.timeline).toEqual(['nft baseline', 'dataplane start', 'dataplane credentials'])
    expect(daemon.state).toBe('waiting-certificates')
    goLive()
    await started
    expect(f.timeline.at(-1)).toBe('nft final')
    expect(daemon.state).toBe('ready')
    await daemon.stop()
  })

  it('warns at every start about each egress entry that opted out of secure naming', async () => {
    await writeCertificates(dir)
    const optedOut = meshConfigFromStrings({
      egress: { value: 'vault#127.0.0.1:8200#vault:8200##db#127.0.0.2:5432#db:5432', source: 'test' },
      egressMeshCaOnly: { value: 'vault', source: 'test' },
    })
    for (let i = 0; i < 2; i++) {
      const sink = logSink()
      const f = fakes()
      const daemon = new MeshDaemon({ config: optedOut, tlsDir: dir, dataPlane: f.dataPlane, runner: f.runner, log: pino({ level: 'info' }, sink) })
      await daemon.start()
      await daemon.stop()
      const warnings = sink.records.filter((r) => r['level'] === 40)
      expect(warnings.map((w) => w['egress'])).toEqual(['vault'])
      expect(String(warnings[0]?.['msg'])).toContain('any mesh member can answer for vault')
    }
  })

  it('waits, closed, until the certificate directory is complete', async () => {
    const f = fakes()
    const sink = logSink()
    const daemon = new MeshDaemon({
      config,
      tlsDir: dir,
      dataPlane: f.dataPlane,
      runner: f.runner,
      log: pino({ level: 'info' }, sink),
      pollMs: 20,
      pollMaxMs: 40,
    })
    const started = daemon.start()
    await new Promise((r) => setTimeout(r, 150))
    expect(daemon.state).toBe('waiting-certificates')
    expect(f.timeline).toEqual(['nft baseline', 'dataplane start'])
    // One warning per distinct reason, not one per poll.
    expect(sink.records.filter((r) => r['msg'] === 'certificates not available yet; the pod stays closed')).toHaveLength(1)
    await writeCertificates(dir)
    await started
    expect(daemon.state).toBe('ready')

    expect(f.timeline.at(-1)).toBe('nft final')
    await daemon.stop()
  })

  it('a long wait does not pile abort listeners onto the daemon’s signal', async () => {
    const warnings: string[] = []
    const onWarning = (w: Error): void => void warnings.push(w.name)
    process.on('warning', onWarning)
    const f = fakes()
    const daemon = new MeshDaemon({ config, tlsDir: dir, dataPlane: f.dataPlane, runner: f.runner, log: pino({ level: 'silent' }), pollMs: 5, pollMaxMs: 5 })
    const started = daemon.start()
    try {
      // Some 40 polls: one leaked listener each would pass Node's limit of 10 many times over.
      await new Promise((r) => setTimeout(r, 300))
      await new Promise((r) => setImmediate(r))
      expect(warnings).not.toContain('MaxListenersExceededWarning')
    } finally {
      process.off('warning', onWarning)
      await daemon.stop()
      await started
    }
  })

  it('stops by restoring the baseline first, then closing the data plane (no instant without a listener behind tproxy)', async () => {
    await writeCertificates(dir)
    const f = fakes()
    const daemon = new MeshDaemon({ config, tlsDir: dir, dataPlane: f.dataPlane, runner: f.runner, log: pino({ level: 'silent' }) })
    await daemon.start()
    f.timeline.length = 0
    await Promise.all([daemon.stop(), daemon.stop()])
    expect(f.timeline).toEqual(['nft baseline', 'dataplane close'])
    expect(daemon.state).toBe('stopped')
  })

  it('a baseline nft rejects at stop still closes the data plane (the final ruleset stays, closed too)', async () => {
    await writeCertificates(dir)
    let stopping = false
    const f = fakes({ failNft: (s) => stopping && s.includes('baseline') })
    const daemon = new MeshDaemon({ config, tlsDir: dir, dataPlane: f.dataPlane, runner: f.runner, log: pino({ level: 'silent' }) })
    await daemon.start()
    f.timeline.length = 0
    stopping = true
    await daemon.stop()
    expect(f.timeline).toEqual(['dataplane close'])
    expect(daemon.state).toBe('stopped')
  })

  it('a final ruleset that nft rejects fails the boot and leaves the baseline in place', async () => {
    await writeCertificates(dir)
    const f = fakes({ failNft: (s) => !s.includes('baseline') })
    const daemon = new MeshDaemon({ config, tlsDir: dir, dataPlane: f.dataPlane, runner: f.runner, log: pino({ level: 'silent' }) })
    const err = await rejected(daemon.start())
    expect(err).toMatchObject({ code: 'NETFILTER_APPLY_FAILED' })
    expect(daemon.state).toBe('failed')
    expect(f.timeline).toEqual(['nft baseline', 'dataplane start', 'dataplane credentials', 'dataplane live'])
  })

  it('stop while waiting for certificates ends the wait without opening', async () => {
    const f = fakes()
    const daemon = new MeshDaemon({ config, tlsDir: dir, dataPlane: f.dataPlane, runner: f.runner, log: pino({ level: 'silent' }), pollMs: 20 })
    const started = daemon.start()
    await new Promise((r) => setTimeout(r, 60))
    await daemon.stop()
    await started
    expect(f.timeline).toEqual(['nft baseline', 'dataplane start', 'nft baseline', 'dataplane close'])
    expect(daemon.state).toBe('stopped')
  })
})
