import { describe, it, expect, beforeEach } from 'vitest'
import { pino } from 'pino'
import { selectProvider } from '../../../src/attestation/providers/select.js'
import { logSink, rejected } from '../../support.js'
import { FakeTsm, ROOT } from './fake-tsm.js'

const AA = '/fake/run/aa.sock'
const DEVICES = ['/fake/dev/sev-guest', '/fake/dev/tdx_guest']

let sink: ReturnType<typeof logSink>
let log: pino.Logger
beforeEach(() => {
  sink = logSink()
  log = pino({ level: 'debug' }, sink)
})

/** What the machine "has": a set of present paths. */
function machine(...present: string[]): (p: string) => Promise<boolean> {
  const set = new Set(present)
  return async (p) => set.has(p)
}

const base = { tsmRoot: ROOT, aaSocket: AA, teeDevices: DEVICES }

describe('selectProvider', () => {
  it('prefers configfs-tsm when its provider is known, and logs why', async () => {
    const tsmFs = new FakeTsm('tdx_guest')
    const sel = await selectProvider({ ...base, log, tsmFs, exists: machine(ROOT, AA, DEVICES[1]!), allowSimulated: true })
    expect(sel.provider.kind).toBe('configfs-tsm')
    expect(sel.reason).toContain('tdx')
    expect(tsmFs.entries.size).toBe(0) // the probe entry is gone
    expect(sink.records.find((r) => r.msg === 'evidence provider selected')).toMatchObject({ provider: 'configfs-tsm', tee: 'tdx' })
  })

  it('falls back to the attestation agent when configfs-tsm is unusable', async () => {
    const sel = await selectProvider({ ...base, log, tsmFs: new FakeTsm('arm_cca_guest'), exists: machine(ROOT, AA, DEVICES[0]!) })
    expect(sel.provider.kind).toBe('attestation-agent')
    expect(sink.records.some((r) => r.msg === 'configfs-tsm present but unusable')).toBe(true)
  })

  it('uses the attestation agent when only its socket is present', async () => {
    const sel = await selectProvider({ ...base, log, exists: machine(AA) })
    expect(sel.provider.kind).toBe('attestation-agent')
    expect(sel.reason).toContain(AA)
  })

  it('never simulates when a TEE device is present, even if allowed', async () => {
    const err = await rejected(selectProvider({ ...base, log, exists: machine(DEVICES[0]!), allowSimulated: true }))
    expect(err).toMatchObject({ code: 'PROVIDER_NONE', details: { teeDevices: [DEVICES[0]] } })
  })

  it('refuses to simulate unless explicitly allowed', async () => {
    const err = await rejected(selectProvider({ ...base, log, exists: machine() }))
    expect(err).toMatchObject({ code: 'PROVIDER_NONE', details: { teeDevices: [] } })
    expect(err.details.rejected).toHaveLength(2)
  })

  it('simulates when allowed and nothing else is there, with a warning', async () => {
    const sel = await selectProvider({ ...base, log, exists: machine(), allowSimulated: true })
    expect(sel.provider.kind).toBe('simulated')
    const ev = await sel.provider.getEvidence(new Uint8Array(64).fill(7))
    expect(ev.tee).toBe('simulated-snp')
    expect(sink.records.some((r) => r.level === 40 && String(r.msg).includes('SIMULATED'))).toBe(true)
  })
})
