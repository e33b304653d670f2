// Evidence from the kernel's configfs-tsm report interface
// (/sys/kernel/config/tsm/report, Linux >= 6.7). One request = one entry:
// mkdir, write inblob, read outblob (and auxblob on SNP), then check that
// `generation` moved by exactly our own writes; if another writer touched the
// entry in between, the blob may answer their inblob, so we start over with a
// fresh entry. The entry is removed in every case.
//
// All file access goes through `TsmFs` because configfs computes outblob on
// read: tests substitute an in-process object that behaves the same way.

import { randomBytes } from 'node:crypto'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'
import { isMeshError } from '../../errors.js'
import { parseSnpCertTable } from '../snp/cert-table.js'
import {
  checkAborted,
  checkReportDataSize,
  type Evidence,
  type EvidenceCerts,
  type EvidenceProvider,
  type GetEvidenceOptions,
} from '../provider.js'
import { ProviderError } from './errors.js'
import { checkBlobReportData, SNP_REPORT_BYTES } from './report-data.js'

export const DEFAULT_TSM_REPORT_ROOT = '/sys/kernel/config/tsm/report'

/** The four operations the protocol needs; node:fs/promises satisfies it via `nodeTsmFs`. */
export interface TsmFs {
  mkdir(path: string): Promise<void>
  rmdir(path: string): Promise<void>
  readFile(path: string): Promise<Uint8Array>
  writeFile(path: string, data: Uint8Array): Promise<void>
}

export const nodeTsmFs: TsmFs = {
  mkdir: async (p) => {
    await fsp.mkdir(p)
  },
  rmdir: (p) => fsp.rmdir(p),
  readFile: async (p) => new Uint8Array(await fsp.readFile(p)),
  writeFile: (p, data) => fsp.writeFile(p, data),
}

/** configfs-tsm `provider` values we handle, and the TEE each one means. */
const TSM_PROVIDERS = { sev_guest: 'snp', tdx_guest: 'tdx' } as const
export type TsmTee = (typeof TSM_PROVIDERS)[keyof typeof TSM_PROVIDERS]

export interface ConfigfsTsmOptions {
  readonly log: Logger
  /** The report directory; default /sys/kernel/config/tsm/report. */
  readonly root?: string
  readonly fs?: TsmFs
  /** SNP only: the VMPL to request (0-3), written to `privlevel`; absent = kernel default. */
  readonly privlevel?: number
  /** Fresh entries to try when generation races; default 3. */
  readonly maxAttempts?: number
}

const MAX_GENERATION_TEXT = 32

export class ConfigfsTsmProvider implements EvidenceProvider {
  readonly kind = 'configfs-tsm' as const
  readonly #log: Logger
  readonly #root: string
  readonly #fs: TsmFs
  readonly #privlevel: number | undefined
  readonly #maxAttempts: number

  constructor(opts: ConfigfsTsmOptions) {
    this.#log = opts.log.child({ component: 'attestation', provider: 'configfs-tsm' })
    this.#root = opts.root ?? DEFAULT_TSM_REPORT_ROOT
    this.#fs = opts.fs ?? nodeTsmFs
    this.#maxAttempts = opts.maxAttempts ?? 3
    if (opts.privlevel !== undefined && (!Number.isInteger(opts.privlevel) || opts.privlevel < 0 || opts.privlevel > 3)) {
      throw new ProviderError('PROVIDER_BAD_INPUT', `privlevel ${opts.privlevel} not in 0-3`, { field: 'privlevel', value: opts.privlevel })
    }
    this.#privlevel = opts.privlevel
    if (!Number.isInteger(this.#maxAttempts) || this.#maxAttempts < 1) {
      throw new ProviderError('PROVIDER_BAD_INPUT', `maxAttempts ${this.#maxAttempts} must be a positive integer`, { field: 'maxAttempts', value: this.#maxAttempts })
    }
  }

  /** Which TEE backs the interface: creates and removes one entry to read `provider`. */
  async probe(): Promise<TsmTee> {
    return this.#withEntry(async (entry) => this.#readProvider(entry))
  }

  async getEvidence(reportData: Uint8Array, opts: GetEvidenceOptions = {}): Promise<Evidence> {
    checkReportDataSize(reportData)
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      checkAborted(opts.signal, this.kind)
      const got = await this.#withEntry((entry) => this.#attempt(entry, reportData, opts.signal))
      if (got.raced === undefined) return got.evidence
      this.#log.warn({ attempt, ...got.raced }, 'configfs-tsm generation moved during the request; retrying with a fresh entry')
      if (attempt === this.#maxAttempts) {
        throw new ProviderError('PROVIDER_TSM_RACE', `generation moved on all ${attempt} attempts (last ${got.raced.before} -> ${got.raced.after}, expected ${got.raced.expected})`, {
          attempts: attempt,
          ...got.raced,
        })
      }
    }
    throw new Error('unreachable')
  }

  async #attempt(
    entry: string,
    reportData: Uint8Array,
    signal: AbortSignal | undefined,
  ): Promise<{ raced: undefined; evidence: Evidence } | { raced: { before: number; after: number; expected: number } }> {
    const tee = await this.#readProvider(entry)
    if (tee === 'snp' && this.#privlevel !== undefined) await this.#write(entry, 'privlevel', new TextEncoder().encode(`${this.#privlevel}\n`))
    const before = await this.#readGeneration(entry)
    await this.#write(entry, 'inblob', reportData)
    checkAborted(signal, this.kind)
    const outblob = await this.#read(entry, 'outblob')
    const auxblob = tee === 'snp' ? await this.#readOptional(entry, 'auxblob') : undefined
    const after = await this.#readGeneration(entry)
    // Our inblob write is the only write allowed between the two reads.
    if (after !== before + 1) return { raced: { before, after, expected: before + 1 } }

    checkEmbeddedReportData(tee, outblob, reportData)
    const evidence: Evidence = {
      tee,
      raw: outblob,
      provider: this.kind,
      certs: auxblob !== undefined && auxblob.byteLength > 0 ? certsFromTable(auxblob) : undefined,
    }
    this.#log.debug({ tee, bytes: outblob.byteLength, certs: evidence.certs !== undefined }, 'evidence obtained')
    return { raced: undefined, evidence }
  }

  async #withEntry<T>(fn: (entry: string) => Promise<T>): Promise<T> {
    const entry = path.join(this.#root, `podvm-mesh-${process.pid}-${randomBytes(6).toString('hex')}`)
    try {
      await this.#fs.mkdir(entry)
    } catch (err) {
      throw ioError('entry', entry, 'mkdir', err)
    }
    try {
      return await fn(entry)
    } finally {
      try {
        await this.#fs.rmdir(entry)
      } catch (err) {
        // Never mask the request's own outcome; a leaked entry is only a leak.
        this.#log.warn({ err, entry }, 'cannot remove configfs-tsm entry')
      }
    }
  }

  async #readProvider(entry: string): Promise<TsmTee> {
    const text = new TextDecoder().decode(await this.#read(entry, 'provider')).trim()
    const tee = (TSM_PROVIDERS as Record<string, TsmTee>)[text]
    if (tee === undefined) {
      throw new ProviderError('PROVIDER_TSM_UNSUPPORTED', `configfs-tsm provider ${JSON.stringify(text.slice(0, 64))} is not one of ${Object.keys(TSM_PROVIDERS).join(', ')}`, {
        attribute: 'provider',
        value: text.slice(0, 64),
      })
    }
    return tee
  }

  async #readGeneration(entry: string): Promise<number> {
    const bytes = await this.#read(entry, 'generation')
    const text = new TextDecoder().decode(bytes.subarray(0, MAX_GENERATION_TEXT)).trim()
    if (bytes.byteLength > MAX_GENERATION_TEXT || !/^\d{1,15}$/.test(text)) {
      throw new ProviderError('PROVIDER_TSM_MALFORMED', `generation ${JSON.stringify(text)} is not a decimal counter`, { attribute: 'generation', value: text })
    }
    return Number(text)
  }

  async #read(entry: string, attribute: string): Promise<Uint8Array> {
    try {
      return await this.#fs.readFile(path.join(entry, attribute))
    } catch (err) {
      throw ioError(attribute, entry, 'read', err)
    }
  }

  async #readOptional(entry: string, attribute: string): Promise<Uint8Array | undefined> {
    try {
      return await this.#fs.readFile(path.join(entry, attribute))
    } catch (err) {
      // No certificates loaded by the host (or an old kernel): evidence without certs.
      const errno = (err as NodeJS.ErrnoException).code
      if (errno === 'ENOENT' || errno === 'ENODATA') return undefined
      throw ioError(attribute, entry, 'read', err)
    }
  }

  async #write(entry: string, attribute: string, data: Uint8Array): Promise<void> {
    try {
      await this.#fs.writeFile(path.join(entry, attribute), data)
    } catch (err) {
      throw ioError(attribute, entry, 'write', err)
    }
  }
}

function ioError(attribute: string, entry: string, op: string, err: unknown): ProviderError {
  const errno = (err as NodeJS.ErrnoException).code
  return new ProviderError('PROVIDER_TSM_IO', `configfs-tsm ${op} ${attribute} in ${entry}: ${(err as Error).message}`, { attribute, entry, op, errno }, { cause: err })
}

/**
 * A blob that does not carry our report data answers someone else's request,
 * whatever `generation` says: refuse it rather than hand it to a verifier.
 */
function checkEmbeddedReportData(tee: TsmTee, blob: Uint8Array, reportData: Uint8Array): void {
  const c = checkBlobReportData(tee, blob, reportData)
  if (c.ok) return
  const what = c.problem === 'mismatch' ? 'does not carry the report data we wrote' : tee === 'snp' ? `is ${c.length} B, not an SEV-SNP report (${SNP_REPORT_BYTES} B)` : `(${c.length} B, version ${c.version}) is not a TDX v4/v5 quote`
  const { ok: _ok, ...details } = c
  throw new ProviderError('PROVIDER_TSM_MALFORMED', `outblob ${what}`, { attribute: 'outblob', ...details })
}

function certsFromTable(auxblob: Uint8Array): EvidenceCerts {
  let table
  try {
    table = parseSnpCertTable(auxblob)
  } catch (err) {
    if (!isMeshError(err)) throw err
    throw new ProviderError('PROVIDER_TSM_MALFORMED', `auxblob certificate table: ${err.message}`, { attribute: 'auxblob', ...err.details }, { cause: err })
  }
  const der = (c: { raw: Uint8Array } | undefined): Uint8Array | undefined => (c === undefined ? undefined : Uint8Array.from(c.raw))
  const chain = table.ask !== undefined && table.ark !== undefined ? [der(table.ask)!, der(table.ark)!] : undefined
  return { vcek: der(table.vcek), vlek: der(table.vlek), chain }
}
