import { describe, it, expect, beforeEach } from 'vitest'
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { pino } from 'pino'
import { ConfigfsTsmProvider, type TsmFs } from '../../../src/attestation/providers/configfs-tsm.js'
import { buildSnpCertTable } from '../../../src/attestation/snp/cert-table.js'
import { logSink, rejected } from '../../support.js'

const ROOT = '/fake/sys/kernel/config/tsm/report'
const vectors = (f: string): Buffer => readFileSync(new URL(`../vectors/snp/${f}`, import.meta.url))
const VCEK = new Uint8Array(vectors('vcek_milan.der'))
const [ASK, ARK] = (vectors('cert_chain_milan').toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map(
  (pem) => new Uint8Array(new X509Certificate(pem).raw),
) as [Uint8Array, Uint8Array]
const CERT_TABLE = buildSnpCertTable({ vcek: VCEK, ask: ASK, ark: ARK })

const reportData = Uint8Array.from({ length: 64 }, (_, i) => i * 3)

function errno(code: string, p: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${p}`), { code })
}

interface Entry {
  generation: number
  inblob?: Uint8Array
  privlevel?: number
}

/**
 * Behaves like the kernel's configfs-tsm: entries appear on mkdir, every write
 * bumps `generation`, outblob/auxblob are computed on read from the current inblob.
 */
class FakeTsm implements TsmFs {
  readonly entries = new Map<string, Entry>()
  readonly ops: string[] = []
  /** Runs after each successful write: tests inject a racing writer here. */
  afterWrite: ((entry: string, attr: string) => void) | undefined
  auxblob: Uint8Array | 'ENOENT' = CERT_TABLE
  outblob: ((e: Entry) => Uint8Array) | undefined
  failRmdir = false

  constructor(readonly provider: string) {}

  async mkdir(p: string): Promise<void> {
    this.ops.push(`mkdir`)
    if (path.dirname(p) !== ROOT) throw errno('ENOENT', p)
    if (this.entries.has(p)) throw errno('EEXIST', p)
    this.entries.set(p, { generation: 0 })
  }

  async rmdir(p: string): Promise<void> {
    this.ops.push('rmdir')
    if (this.failRmdir) throw errno('EBUSY', p)
    if (!this.entries.delete(p)) throw errno('ENOENT', p)
  }

  async readFile(p: string): Promise<Uint8Array> {
    const attr = path.basename(p)
    this.ops.push(`read ${attr}`)
    const e = this.#entry(p)
    const text = (s: string): Uint8Array => new TextEncoder().encode(s)
    switch (attr) {
      case 'provider':
        return text(`${this.provider}\n`)
      case 'generation':
        return text(`${e.generation}\n`)
      case 'outblob':
        if (e.inblob === undefined) throw errno('EINVAL', p)
        return this.outblob?.(e) ?? this.#report(e)
      case 'auxblob':
        if (this.auxblob === 'ENOENT' || this.provider !== 'sev_guest') throw errno('ENOENT', p)
        return this.auxblob
      default:
        throw errno('ENOENT', p)
    }
  }

  async writeFile(p: string, data: Uint8Array): Promise<void> {
    const attr = path.basename(p)
    this.ops.push(`write ${attr}`)
    const e = this.#entry(p)
    if (attr === 'inblob') {
      if (data.byteLength !== 64) throw errno('EINVAL', p)
      e.inblob = Uint8Array.from(data)
    } else if (attr === 'privlevel') {
      e.privlevel = Number(new TextDecoder().decode(data).trim())
    } else throw errno('EACCES', p)
    e.generation++
    this.afterWrite?.(p.slice(0, -attr.length - 1), attr)
  }

  /** A second writer (another process) on the same entry. */
  race(entry: string): void {
    const e = this.entries.get(entry)!
    e.inblob = new Uint8Array(64).fill(0xee)
    e.generation++
  }

  #entry(p: string): Entry {
    const e = this.entries.get(path.dirname(p))
    if (e === undefined) throw errno('ENOENT', p)
    return e
  }

  #report(e: Entry): Uint8Array {
    if (this.provider === 'tdx_guest') {
      const q = new Uint8Array(0x300)
      q[0] = 4 // quote version, u16 LE
      q.set(e.inblob!, 0x30 + 0x208)
      return q
    }
    const r = new Uint8Array(0x4a0)
    r[0] = 3
    r[0x30] = e.privlevel ?? 0
    r.set(e.inblob!, 0x50)
    return r
  }
}

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
