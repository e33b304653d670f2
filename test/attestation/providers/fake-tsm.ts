// An in-process stand-in for the kernel's configfs-tsm report directory.

import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { TsmFs } from '../../../src/attestation/providers/configfs-tsm.js'
import { buildSnpCertTable } from '../../../src/attestation/snp/cert-table.js'

export const ROOT = '/fake/sys/kernel/config/tsm/report'
const vectors = (f: string): Buffer => readFileSync(new URL(`../vectors/snp/${f}`, import.meta.url))
export const VCEK = new Uint8Array(vectors('vcek_milan.der'))
export const [ASK, ARK] = (vectors('cert_chain_milan').toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map(
  (pem) => new Uint8Array(new X509Certificate(pem).raw),
) as [Uint8Array, Uint8Array]
export const CERT_TABLE = buildSnpCertTable({ vcek: VCEK, ask: ASK, ark: ARK })

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
export class FakeTsm implements TsmFs {
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
