import { describe, it, expect, beforeEach } from 'vitest'
import { pino } from 'pino'
import { ConfigfsTsmProvider } from '../../../src/attestation/providers/configfs-tsm.js'
import { logSink, rejected } from '../../support.js'
import { ARK, ASK, CERT_TABLE, FakeTsm, ROOT, VCEK } from './fake-tsm.js'

const reportData = Uint8Array.from({ length: 64 }, (_, i) => i * 3)

let sink: ReturnType<typeof logSink>
let log: pino.Logger
beforeEach(() => {
  sink = logSink()
  log = pino({ level: 'debug' }, sink)
})

describe('ConfigfsTsmProvider', () => {
  it('follows the generation protocol on SNP and returns the report with its certificate table', async () => {
    const fs = new FakeTsm('sev_guest')
    const p = new ConfigfsTsmProvider({ log, root: ROOT, fs })
    const ev = await p.getEvidence(reportData)
    expect(fs.ops).toEqual(['mkdir', 'read provider', 'read generation', 'write inblob', 'read outblob', 'read auxblob', 'read generation', 'rmdir'])
    expect(ev).toMatchObject({ tee: 'snp', provider: 'configfs-tsm' })
    expect(ev.raw.byteLength).toBe(0x4a0)
    expect(ev.raw.subarray(0x50, 0x90)).toEqual(reportData)
    expect(ev.certs?.vcek).toEqual(VCEK)
    expect(ev.certs?.chain).toEqual([ASK, ARK])
    expect(ev.certs?.vlek).toBeUndefined()
    expect(fs.entries.size).toBe(0)
  })

  it('returns a TDX quote without reading auxblob', async () => {
    const fs = new FakeTsm('tdx_guest')
    const ev = await new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(reportData)
    expect(ev.tee).toBe('tdx')
    expect(ev.certs).toBeUndefined()
    expect(ev.raw.subarray(0x238, 0x278)).toEqual(reportData)
    expect(fs.ops).not.toContain('read auxblob')
    expect(fs.entries.size).toBe(0)
  })

  it('writes privlevel first on SNP and still accounts generation correctly', async () => {
    const fs = new FakeTsm('sev_guest')
    const ev = await new ConfigfsTsmProvider({ log, root: ROOT, fs, privlevel: 2 }).getEvidence(reportData)
    expect(fs.ops.slice(0, 4)).toEqual(['mkdir', 'read provider', 'write privlevel', 'read generation'])
    expect(ev.raw[0x30]).toBe(2)
  })

  it('retries with a fresh entry when another writer raced between our write and our read', async () => {
    const fs = new FakeTsm('sev_guest')
    let raced = 0
    fs.afterWrite = (entry, attr) => {
      if (attr === 'inblob' && raced++ === 0) fs.race(entry)
    }
    const ev = await new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(reportData)
    expect(ev.raw.subarray(0x50, 0x90)).toEqual(reportData)
    expect(fs.ops.filter((o) => o === 'mkdir')).toHaveLength(2)
    expect(fs.ops.filter((o) => o === 'rmdir')).toHaveLength(2)
    expect(fs.entries.size).toBe(0)
    expect(sink.records.filter((r) => r.level === 40 && r.before === 0 && r.after === 2 && r.expected === 1)).toHaveLength(1)
  })

  it('fails with PROVIDER_TSM_RACE when every attempt races, removing every entry', async () => {
    const fs = new FakeTsm('sev_guest')
    fs.afterWrite = (entry, attr) => {
      if (attr === 'inblob') fs.race(entry)
    }
    const err = await rejected(new ConfigfsTsmProvider({ log, root: ROOT, fs, maxAttempts: 2 }).getEvidence(reportData))
    expect(err).toMatchObject({ code: 'PROVIDER_TSM_RACE', details: { attempts: 2, before: 0, after: 2, expected: 1 } })
    expect(fs.entries.size).toBe(0)
  })

  it('refuses an outblob that does not carry our report data', async () => {
    const fs = new FakeTsm('sev_guest')
    fs.outblob = () => new Uint8Array(0x4a0)
    expect(await rejected(new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(reportData))).toMatchObject({
      code: 'PROVIDER_TSM_MALFORMED',
      details: { attribute: 'outblob', offset: 0x50 },
    })
    expect(fs.entries.size).toBe(0)
  })

  it.each([
    ['sev_guest', 0x4a0 - 1],
    ['tdx_guest', 0x100],
  ])('refuses a %s outblob of %i bytes', async (provider, size) => {
    const fs = new FakeTsm(provider)
    fs.outblob = () => new Uint8Array(size).fill(4, 0, 1)
    expect(await rejected(new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(reportData))).toMatchObject({
      code: 'PROVIDER_TSM_MALFORMED',
      details: { attribute: 'outblob', length: size },
    })
  })

  it('returns SNP evidence without certs when the host loaded none (no auxblob)', async () => {
    const fs = new FakeTsm('sev_guest')
    fs.auxblob = 'ENOENT'
    const ev = await new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(reportData)
    expect(ev.certs).toBeUndefined()
  })

  it('reports a truncated certificate table as PROVIDER_TSM_MALFORMED naming auxblob', async () => {
    const fs = new FakeTsm('sev_guest')
    fs.auxblob = CERT_TABLE.subarray(0, 30)
    const err = await rejected(new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(reportData))
    expect(err).toMatchObject({ code: 'PROVIDER_TSM_MALFORMED', details: { attribute: 'auxblob' } })
    expect(err.cause.code).toMatch(/^ATTESTATION_(TRUNCATED|MALFORMED)$/)
    expect(fs.entries.size).toBe(0)
  })

  it('refuses an unknown provider and still removes the entry', async () => {
    const fs = new FakeTsm('arm_cca_guest')
    expect(await rejected(new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(reportData))).toMatchObject({
      code: 'PROVIDER_TSM_UNSUPPORTED',
      details: { attribute: 'provider', value: 'arm_cca_guest' },
    })
    expect(fs.entries.size).toBe(0)
  })

  it('names the attribute and errno when the report directory is missing', async () => {
    const fs = new FakeTsm('sev_guest')
    const err = await rejected(new ConfigfsTsmProvider({ log, root: '/nonexistent', fs }).getEvidence(reportData))
    expect(err).toMatchObject({ code: 'PROVIDER_TSM_IO', details: { attribute: 'entry', op: 'mkdir', errno: 'ENOENT' } })
  })

  it('refuses a generation that is not a counter', async () => {
    const fs = new FakeTsm('sev_guest')
    const read = fs.readFile.bind(fs)
    fs.readFile = async (p) => (p.endsWith('generation') ? new TextEncoder().encode('x1\n') : read(p))
    expect(await rejected(new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(reportData))).toMatchObject({
      code: 'PROVIDER_TSM_MALFORMED',
      details: { attribute: 'generation' },
    })
  })

  it('does not let a failing rmdir mask the result, but logs it', async () => {
    const fs = new FakeTsm('sev_guest')
    fs.failRmdir = true
    const ev = await new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(reportData)
    expect(ev.tee).toBe('snp')
    expect(sink.records.some((r) => r.msg === 'cannot remove configfs-tsm entry')).toBe(true)
  })

  it('refuses report data that is not 64 bytes before touching configfs', async () => {
    const fs = new FakeTsm('sev_guest')
    expect(await rejected(new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(new Uint8Array(48)))).toMatchObject({
      code: 'PROVIDER_BAD_INPUT',
      details: { length: 48 },
    })
    expect(fs.ops).toEqual([])
  })

  it('stops between steps when aborted', async () => {
    const fs = new FakeTsm('sev_guest')
    const ac = new AbortController()
    fs.afterWrite = () => ac.abort()
    expect(await rejected(new ConfigfsTsmProvider({ log, root: ROOT, fs }).getEvidence(reportData, { signal: ac.signal }))).toMatchObject({ code: 'PROVIDER_ABORTED' })
    expect(fs.ops).not.toContain('read outblob')
    expect(fs.entries.size).toBe(0)
  })

  it.each([
    ['sev_guest', 'snp'],
    ['tdx_guest', 'tdx'],
  ])('probe() reads provider %s as %s and cleans up', async (provider, tee) => {
    const fs = new FakeTsm(provider)
    expect(await new ConfigfsTsmProvider({ log, root: ROOT, fs }).probe()).toBe(tee)
    expect(fs.ops).toEqual(['mkdir', 'read provider', 'rmdir'])
  })
})
