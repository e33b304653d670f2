// Evidence from the Confidential Containers attestation agent (guest-components),
// over ttrpc on its Unix socket: AttestationAgentService/GetEvidence with our
// 64 bytes as RuntimeData. The agent answers with UTF-8 JSON whose shape
// depends on the TEE; we normalize it to Evidence and check that the report
// really carries our report data.
//
// JSON shapes understood (guest-components attester crate):
//   TDX  {"cc_eventlog": <base64 | null>, "quote": <base64>}
//   SNP  {"attestation_report": <report>, "cert_chain": [{"cert_type": "VCEK"|"VLEK"|"ASK"|"ARK"|…, "data": <bytes>}] | null}
// where <report>/<bytes> is a JSON array of byte values or a base64 string.
// The agent's SNP attester serializes the report through the `sev` crate's
// serde struct (named fields, not bytes); rebuilding raw bytes from that
// depends on the crate version, so that form is refused with a typed error
// instead of guessed at. On SNP machines prefer configfs-tsm.

import type { Logger } from 'pino'
import { isMeshError } from '../../errors.js'
import { TtrpcClient, messageType, decode, type TtrpcError } from '../../ttrpc/index.js'
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

export const AA_SERVICE = 'attestation_agent.AttestationAgentService'
export const DEFAULT_AA_SOCKET = '/run/confidential-containers/attestation-agent/attestation-agent.sock'

// attestation-agent.proto: GetEvidenceRequest{1 RuntimeData} → GetEvidenceResponse{1 Evidence};
// GetTeeTypeRequest{} → GetTeeTypeResponse{1 tee}.
export const GetEvidenceRequest = messageType('GetEvidenceRequest', [['RuntimeData', 1, 'bytes']])
export const GetEvidenceResponse = messageType('GetEvidenceResponse', [['Evidence', 1, 'bytes']])
export const GetTeeTypeResponse = messageType('GetTeeTypeResponse', [['tee', 1, 'string']])

export interface AttestationAgentOptions {
  readonly log: Logger
  /** Default /run/confidential-containers/attestation-agent/attestation-agent.sock. */
  readonly socketPath?: string
  /** Per call; hardware evidence can be slow. Default 60 s. */
  readonly timeoutMs?: number
}

/** Upper bound for values we decode from JSON; a ttrpc frame is at most 4 MiB anyway. */
const MAX_CERTS = 16

export class AttestationAgentProvider implements EvidenceProvider {
  readonly kind = 'attestation-agent' as const
  readonly #log: Logger
  readonly #socketPath: string
  readonly #timeoutMs: number

  constructor(opts: AttestationAgentOptions) {
    this.#log = opts.log.child({ component: 'attestation', provider: 'attestation-agent' })
    this.#socketPath = opts.socketPath ?? DEFAULT_AA_SOCKET
    this.#timeoutMs = opts.timeoutMs ?? 60_000
  }

  async getEvidence(reportData: Uint8Array, opts: GetEvidenceOptions = {}): Promise<Evidence> {
    checkReportDataSize(reportData)
    checkAborted(opts.signal, this.kind)
    const payload = await this.#call('GetEvidence', GetEvidenceRequest.encode({ RuntimeData: reportData }).finish(), opts.signal)
    const evidenceJson = bytesField(wrapDecode(() => decode(GetEvidenceResponse, payload, 'GetEvidenceResponse')).Evidence)
    const evidence = normalizeAaEvidence(evidenceJson, reportData)
    this.#log.debug({ tee: evidence.tee, bytes: evidence.raw.byteLength, certs: evidence.certs !== undefined }, 'evidence obtained')
    return evidence
  }

  /** The agent's own idea of the TEE (`snp`, `tdx`, `sample`, …). */
  async getTeeType(opts: GetEvidenceOptions = {}): Promise<string> {
    const payload = await this.#call('GetTeeType', new Uint8Array(0), opts.signal)
    const m = wrapDecode(() => decode(GetTeeTypeResponse, payload, 'GetTeeTypeResponse'))
    return typeof m.tee === 'string' ? m.tee : ''
  }

  async #call(method: string, payload: Uint8Array, signal: AbortSignal | undefined): Promise<Uint8Array> {
    let client: TtrpcClient | undefined
    try {
      client = await TtrpcClient.connect(this.#socketPath, { log: this.#log, signal })
      return await client.call(AA_SERVICE, method, payload, { timeoutMs: this.#timeoutMs, signal })
    } catch (err) {
      if (!isMeshError(err)) throw err
      const t = err as TtrpcError
      if (t.code === 'TTRPC_ABORTED') throw new ProviderError('PROVIDER_ABORTED', `attestation-agent ${method} aborted`, { provider: this.kind }, { cause: err })
      throw new ProviderError('PROVIDER_AA_CALL', `attestation-agent ${method} at ${this.#socketPath}: ${t.message}`, {
        method,
        socketPath: this.#socketPath,
        ttrpcCode: t.code,
        ...(typeof t.details.grpcCode === 'number' ? { grpcCode: t.details.grpcCode, grpcMessage: t.details.grpcMessage } : {}),
      }, { cause: err })
    } finally {
      client?.destroy()
    }
  }
}

function wrapDecode(fn: () => Record<string, unknown>): Record<string, unknown> {
  try {
    return fn()
  } catch (err) {
    throw new ProviderError('PROVIDER_AA_EVIDENCE', `attestation-agent response: ${(err as Error).message}`, { field: 'response' }, { cause: err })
  }
}

function bytesField(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? Uint8Array.from(v) : new Uint8Array(0)
}

const CERT_ROLES: Readonly<Record<string, 'vcek' | 'vlek' | 'ask' | 'ark'>> = { VCEK: 'vcek', VLEK: 'vlek', ASK: 'ask', ASVK: 'ask', ARK: 'ark' }

/** Turns the agent's evidence JSON into Evidence; `reportData` must appear in the report. */
export function normalizeAaEvidence(json: Uint8Array, reportData: Uint8Array): Evidence {
  let doc: unknown
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json))
  } catch (err) {
    throw bad('evidence', `not UTF-8 JSON (${(err as Error).message})`, { length: json.byteLength }, err)
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw bad('evidence', 'not a JSON object')
  const o = doc as Record<string, unknown>

  let evidence: Evidence
  if ('quote' in o) {
    const raw = bytesValue(o.quote, 'quote')
    const log = o.cc_eventlog
    evidence = {
      tee: 'tdx',
      raw,
      provider: 'attestation-agent',
      eventLog: log === undefined || log === null ? undefined : bytesValue(log, 'cc_eventlog'),
    }
  } else if ('attestation_report' in o) {
    const rep = o.attestation_report
    if (rep !== null && typeof rep === 'object' && !Array.isArray(rep)) {
      throw bad('attestation_report', 'is the sev crate\'s structured form; only raw bytes (array or base64) are supported', {
        keys: Object.keys(rep).slice(0, 8),
      })
    }
    const raw = bytesValue(rep, 'attestation_report')
    evidence = { tee: 'snp', raw, provider: 'attestation-agent', certs: certChain(o.cert_chain) }
  } else {
    throw bad('evidence', 'neither a TDX ("quote") nor an SNP ("attestation_report") evidence', { keys: Object.keys(o).slice(0, 8) })
  }

  const tee = evidence.tee === 'tdx' ? 'tdx' : 'snp'
  const c = checkBlobReportData(tee, evidence.raw, reportData)
  if (!c.ok) {
    const field = tee === 'tdx' ? 'quote' : 'attestation_report'
    const what = c.problem === 'mismatch' ? 'does not carry the report data we sent' : tee === 'snp' ? `is ${c.length} B, a report is ${SNP_REPORT_BYTES} B` : `(${c.length} B) is not a TDX v4/v5 quote`
    const { ok: _ok, ...details } = c
    throw bad(field, what, details)
  }
  return evidence
}

function certChain(v: unknown): EvidenceCerts | undefined {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v)) throw bad('cert_chain', 'not an array')
  if (v.length > MAX_CERTS) throw bad('cert_chain', `${v.length} entries, at most ${MAX_CERTS}`)
  const found: Partial<Record<'vcek' | 'vlek' | 'ask' | 'ark', Uint8Array>> = {}
  v.forEach((entry: unknown, i) => {
    const field = `cert_chain[${i}]`
    if (entry === null || typeof entry !== 'object') throw bad(field, 'not an object')
    const e = entry as Record<string, unknown>
    // serde writes unit enum variants as strings; anything else (OTHER(uuid), CRL) is not a certificate we use.
    const role = typeof e.cert_type === 'string' ? CERT_ROLES[e.cert_type.toUpperCase()] : undefined
    if (role === undefined) return
    found[role] = bytesValue(e.data, `${field}.data`)
  })
  const chain = found.ask !== undefined && found.ark !== undefined ? [found.ask, found.ark] : undefined
  if (found.vcek === undefined && found.vlek === undefined && chain === undefined) return undefined
  return { vcek: found.vcek, vlek: found.vlek, chain }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/
const BASE64URL = /^[A-Za-z0-9_-]*$/

/** A JSON array of bytes (serde's Vec<u8>) or a base64 string, decoded strictly. */
function bytesValue(v: unknown, field: string): Uint8Array {
  if (typeof v === 'string') {
    if (BASE64.test(v)) return new Uint8Array(Buffer.from(v, 'base64'))
    if (BASE64URL.test(v)) return new Uint8Array(Buffer.from(v, 'base64url'))
    throw bad(field, 'is a string but not base64', { length: v.length })
  }
  if (Array.isArray(v)) {
    const out = new Uint8Array(v.length)
    for (let i = 0; i < v.length; i++) {
      const b = v[i]
      if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) throw bad(field, `element ${i} is not a byte`, { index: i })
      out[i] = b
    }
    return out
  }
  throw bad(field, `is ${v === null ? 'null' : typeof v}, expected base64 or an array of bytes`)
}

function bad(field: string, reason: string, details: Record<string, unknown> = {}, cause?: unknown): ProviderError {
  return new ProviderError('PROVIDER_AA_EVIDENCE', `attestation-agent evidence ${field} ${reason}`, { field, ...details }, cause === undefined ? undefined : { cause })
}
