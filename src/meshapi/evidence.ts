// One evidence check for both directions of the mesh API: the coordinator judging a
// pod, and a pod judging the coordinator. Genuineness (the attestation verifiers),
// the binding to a key and nonce, then reference values; the first class of failure
// found decides the error code, and every verifier reason is kept in details.

import { X509Certificate } from 'node:crypto'
import {
  bindReportData,
  certFingerprint,
  checkReportData,
  toHex,
  verifySnp,
  verifyTdx,
  type Evidence,
  type SnpPolicyOptions,
  type TdxPolicyOptions,
  type VerifyReason,
  type VerifyReasonCode,
} from '../attestation/index.js'
import { isMeshError } from '../errors.js'
import { isMeshApiError, MeshApiError, type MeshApiCode } from './errors.js'
import type { WireEvidence } from './proto.js'

type Hex = string
type HexFields<T, K extends keyof T> = Omit<T, K> & { readonly [P in K]?: T[P] extends Uint8Array | undefined ? Hex : readonly Hex[] }

/**
 * What evidence is checked against: the coordinator manifest's reference values (its
 * schema decides what is required), or a pod's pin of its coordinator, which names fewer
 * fields. The verifiers' policy options, with hex where they take bytes.
 */
export interface ReferenceValues {
  readonly snp?: HexFields<SnpPolicyOptions, 'measurements'> & { readonly products?: readonly string[] }
  readonly tdx?: HexFields<Omit<TdxPolicyOptions, 'rtmr'>, 'mrTd' | 'minimumTeeTcbSvn' | 'tdAttributes' | 'xfam' | 'mrSeam'> & {
    readonly rtmr?: Partial<Record<'0' | '1' | '2' | '3', readonly Hex[]>>
  }
}

export interface EvidenceCheckOptions {
  readonly publicKeyDer: Uint8Array
  readonly nonce: Uint8Array
  readonly at: Date
  readonly acceptSimulated: boolean
  /** SHA-256 (hex) of simulated roots to accept; undefined = the root the evidence brings. */
  readonly simulatedRoots?: readonly string[] | undefined
  readonly referenceValues?: ReferenceValues | undefined
  /**
   * Refuse evidence of a real TEE type that `referenceValues` does not name (the
   * coordinator's admission). A pod checking its coordinator against a root-CA pin
   * passes no reference values and leaves this off.
   */
  readonly requireReferenceValues?: boolean
  /**
   * Replaces AMD's and Intel's pinned roots for evidence that claims a real TEE. Only for
   * tests, which re-sign real SNP/TDX evidence formats under a test root; never taken
   * from a manifest or the command line.
   */
  readonly vendorRoots?: { readonly snp?: readonly X509Certificate[]; readonly tdx?: readonly X509Certificate[] }
}

export interface CheckedEvidence {
  readonly tee: 'snp' | 'tdx' | 'simulated'
  /** HOST_DATA (SNP, 32 B) or MRCONFIGID (TDX, 48 B): the policy hash. */
  readonly policyHash: Uint8Array
  readonly measurement: Uint8Array
}

// Failures that say "a genuine TEE, but not one this manifest admits".
const REFERENCE_REASONS: ReadonlySet<VerifyReasonCode> = new Set<VerifyReasonCode>([
  'SNP_MEASUREMENT_NOT_ALLOWED',
  'SNP_TCB_BELOW_MINIMUM',
  'SNP_LAUNCH_TCB_BELOW_MINIMUM',
  'SNP_VMPL_MISMATCH',
  'SNP_MIGRATE_MA_ALLOWED',
  'SNP_GUEST_POLICY_MISMATCH',
  'SNP_DEBUG_ALLOWED',
  'SNP_PRODUCT_MISMATCH',
  'TDX_MR_TD_NOT_ALLOWED',
  'TDX_RTMR_NOT_ALLOWED',
  'TDX_TD_ATTRIBUTES_NOT_ALLOWED',
  'TDX_XFAM_NOT_ALLOWED',
  'TDX_MR_SEAM_NOT_ALLOWED',
  'TDX_QE_SVN_BELOW_MINIMUM',
  'TDX_TEE_TCB_SVN_BELOW_MINIMUM',
  'TDX_DEBUG_ENABLED',
])

export function wireToEvidence(w: WireEvidence | undefined): Evidence {
  if (w === undefined || w.Raw === undefined || w.Raw.byteLength === 0) {
    throw new MeshApiError('COORDINATOR_BAD_REQUEST', 'Evidence is missing', { field: 'Evidence' })
  }
  if (w.Tee !== 'snp' && w.Tee !== 'tdx' && w.Tee !== 'simulated-snp') {
    throw new MeshApiError('COORDINATOR_BAD_REQUEST', `Evidence.Tee "${w.Tee}" is not snp, tdx or simulated-snp`, { field: 'Evidence.Tee', value: w.Tee })
  }
  const chain = (w.Chain ?? []).filter((c) => c.byteLength > 0).map((c) => new Uint8Array(c))
  const provider = w.Provider === 'configfs-tsm' || w.Provider === 'attestation-agent' || w.Provider === 'simulated' ? w.Provider : 'simulated'
  return {
    tee: w.Tee,
    raw: new Uint8Array(w.Raw),
    certs: {
      vcek: w.Vcek !== undefined && w.Vcek.byteLength > 0 ? new Uint8Array(w.Vcek) : undefined,
      vlek: w.Vlek !== undefined && w.Vlek.byteLength > 0 ? new Uint8Array(w.Vlek) : undefined,
      chain: chain.length > 0 ? chain : undefined,
    },
    provider,
  }
}

export function evidenceToWire(e: Evidence): WireEvidence {
  return {
    Tee: e.tee,
    Raw: e.raw,
    // protobufjs encodes an undefined field as an absent one.
    Vcek: e.certs?.vcek,
    Vlek: e.certs?.vlek,
    Chain: [...(e.certs?.chain ?? [])],
    Provider: e.provider,
  }
}

function fail(code: MeshApiCode, message: string, details: Record<string, unknown>, cause?: unknown): never {
  throw new MeshApiError(code, message, details, cause === undefined ? undefined : { cause })
}

function reasonsDetail(reasons: readonly VerifyReason[]): { code: string; message: string; details: VerifyReason['details'] }[] {
  return reasons.map((r) => ({ code: r.code, message: r.message, details: r.details }))
}

/** Verifies evidence; throws a MeshApiError naming the first failed class of check. */
export function checkEvidence(evidence: Evidence, opts: EvidenceCheckOptions): CheckedEvidence {
  const expected = bindReportData(opts.publicKeyDer, opts.nonce)
  const ref = opts.referenceValues
  let tee: CheckedEvidence['tee']
  let reasons: readonly VerifyReason[]
  let reportData: Uint8Array
  let policyHash: Uint8Array
  let measurement: Uint8Array
  if (opts.requireReferenceValues === true && (evidence.tee === 'snp' || evidence.tee === 'tdx') && ref?.[evidence.tee] === undefined) {
    fail('COORDINATOR_TEE_NOT_ADMITTED', `the manifest has no referenceValues.${evidence.tee}: ${evidence.tee} evidence is not admitted`, {
      tee: evidence.tee,
      path: `referenceValues.${evidence.tee}`,
    })
  }
  try {
    if (evidence.tee === 'tdx') {
      const tdx = ref?.tdx
      const policy: TdxPolicyOptions = {
        mrTd: tdx?.mrTd?.map((h) => Buffer.from(h, 'hex')),
        rtmr: tdx?.rtmr === undefined ? undefined : rtmrAllowLists(tdx.rtmr),
        minimumTeeTcbSvn: tdx?.minimumTeeTcbSvn === undefined ? undefined : Buffer.from(tdx.minimumTeeTcbSvn, 'hex'),
        allowDebug: tdx?.allowDebug,
        allowMigratable: tdx?.allowMigratable,
        minimumQeSvn: tdx?.minimumQeSvn,
        tdAttributes: tdx?.tdAttributes?.map((h) => Buffer.from(h, 'hex')),
        xfam: tdx?.xfam?.map((h) => Buffer.from(h, 'hex')),
        mrSeam: tdx?.mrSeam?.map((h) => Buffer.from(h, 'hex')),
      }
      const roots = opts.vendorRoots?.tdx
      const r = verifyTdx(evidence.raw, { at: opts.at, policy, roots: roots === undefined ? undefined : { root: roots } })
      tee = r.tee
      reasons = r.reasons
      reportData = r.claims.reportData
      policyHash = r.claims.mrConfigId
      measurement = r.claims.mrTd
    } else {
      const simulated = evidence.tee === 'simulated-snp'
      if (simulated && !opts.acceptSimulated) {
        fail('COORDINATOR_SIMULATED_REFUSED', 'simulated evidence is not accepted here', { tee: evidence.tee, provider: evidence.provider })
      }
      let roots: { ark: X509Certificate[] } | undefined
      if (simulated) {
        const chain = evidence.certs?.chain ?? []
        const last = chain.at(-1)
        if (last === undefined) fail('COORDINATOR_EVIDENCE_REJECTED', 'simulated evidence without its chain', { reasons: [{ code: 'SNP_CHAIN_MISSING' }] })
        const root = new X509Certificate(last)
        const fp = certFingerprint(root)
        if (opts.simulatedRoots !== undefined && !opts.simulatedRoots.includes(fp)) {
          fail('COORDINATOR_EVIDENCE_REJECTED', `simulated root ${fp} is not pinned`, { reasons: [{ code: 'SNP_ARK_NOT_TRUSTED', root: fp }] })
        }
        roots = { ark: [root] }
      } else if (opts.vendorRoots?.snp !== undefined) {
        roots = { ark: [...opts.vendorRoots.snp] }
      }
      const snp = ref?.snp
      const policy: SnpPolicyOptions = {
        measurements: snp?.measurements?.map((h) => Buffer.from(h, 'hex')),
        minimumTcb: snp?.minimumTcb,
        minimumLaunchTcb: snp?.minimumLaunchTcb,
        guestPolicy: snp?.guestPolicy,
        // Evidence from a higher VMPL speaks for less privileged code than the guest kernel.
        vmpl: snp?.vmpl ?? 0,
        allowDebug: snp?.allowDebug,
      }
      const certs = evidence.certs
      const r = verifySnp(evidence.raw, {
        at: opts.at,
        vcek: certs?.vcek ?? certs?.vlek,
        chain: certs?.chain !== undefined && certs.chain.length > 0 ? [...certs.chain] : undefined,
        policy,
        roots,
      })
      // A chain to a test vendor root counts as real: the verifier already refused any other root.
      const chainIsReal = r.tee === 'snp' || (!simulated && opts.vendorRoots?.snp !== undefined)
      tee = chainIsReal ? 'snp' : 'simulated'
      const extra: VerifyReason[] = []
      // A report that claims to be real must chain to AMD; one that claims to be simulated must not pass for real.
      if (simulated === chainIsReal) {
        extra.push({ code: 'SNP_ARK_NOT_TRUSTED', message: `evidence says ${evidence.tee}, chain says ${r.tee}`, details: {} })
      }
      const product = r.claims.product
      if (snp?.products !== undefined && !simulated && (product === undefined || !snp.products.includes(product as 'Milan'))) {
        extra.push({ code: 'SNP_PRODUCT_MISMATCH', message: `product ${product ?? 'unknown'} not in ${snp.products.join(',')}`, details: { product } })
      }
      reasons = [...r.reasons, ...extra]
      reportData = r.claims.reportData
      policyHash = r.claims.hostData
      measurement = r.claims.measurement
    }
  } catch (err) {
    if (isMeshApiError(err) || !isMeshError(err)) throw err
    fail('COORDINATOR_EVIDENCE_REJECTED', `evidence cannot be parsed: ${err.message}`, { reasons: [{ code: err.code, message: err.message }] }, err)
  }
  const genuine = reasons.filter((r) => !REFERENCE_REASONS.has(r.code))
  if (genuine.length > 0) {
    fail('COORDINATOR_EVIDENCE_REJECTED', `evidence failed ${genuine.map((r) => r.code).join(', ')}`, { tee, reasons: reasonsDetail(genuine) })
  }
  const binding = checkReportData(reportData, expected)
  if (binding !== undefined) {
    fail('COORDINATOR_BINDING_MISMATCH', 'evidence is not bound to this public key and nonce', {
      tee,
      reportData: toHex(reportData),
      expected: toHex(expected),
    })
  }
  if (reasons.length > 0) {
    // Against a manifest, each reason names the entry that refused it.
    const detail = reasonsDetail(reasons).map((r) => {
      const path = opts.requireReferenceValues === true ? manifestPath(r.code, r.details) : undefined
      return path === undefined ? r : { ...r, path }
    })
    const named = detail.map((r) => ('path' in r ? `${r.code} (${r.path})` : r.code))
    fail('COORDINATOR_REFERENCE_MISMATCH', `evidence does not meet the reference values: ${named.join(', ')}`, { tee, reasons: detail })
  }
  return { tee, policyHash, measurement }
}

function rtmrAllowLists(rtmr: Partial<Record<'0' | '1' | '2' | '3', readonly string[]>>): (Uint8Array[] | undefined)[] {
  return (['0', '1', '2', '3'] as const).map((i) => rtmr[i]?.map((h) => Buffer.from(h, 'hex')))
}

const REASON_PATH: Partial<Record<VerifyReasonCode, string>> = {
  SNP_MEASUREMENT_NOT_ALLOWED: 'referenceValues.snp.measurements',
  SNP_TCB_BELOW_MINIMUM: 'referenceValues.snp.minimumTcb',
  SNP_LAUNCH_TCB_BELOW_MINIMUM: 'referenceValues.snp.minimumLaunchTcb',
  SNP_VMPL_MISMATCH: 'referenceValues.snp.vmpl',
  SNP_DEBUG_ALLOWED: 'referenceValues.snp.allowDebug',
  SNP_MIGRATE_MA_ALLOWED: 'referenceValues.snp.guestPolicy.allowMigrationAgent',
  SNP_GUEST_POLICY_MISMATCH: 'referenceValues.snp.guestPolicy',
  SNP_PRODUCT_MISMATCH: 'referenceValues.snp.products',
  TDX_MR_TD_NOT_ALLOWED: 'referenceValues.tdx.mrTd',
  TDX_RTMR_NOT_ALLOWED: 'referenceValues.tdx.rtmr',
  TDX_TEE_TCB_SVN_BELOW_MINIMUM: 'referenceValues.tdx.minimumTeeTcbSvn',
  TDX_DEBUG_ENABLED: 'referenceValues.tdx.allowDebug',
  TDX_TD_ATTRIBUTES_NOT_ALLOWED: 'referenceValues.tdx.tdAttributes',
  TDX_XFAM_NOT_ALLOWED: 'referenceValues.tdx.xfam',
  TDX_MR_SEAM_NOT_ALLOWED: 'referenceValues.tdx.mrSeam',
  TDX_QE_SVN_BELOW_MINIMUM: 'referenceValues.tdx.minimumQeSvn',
}

/** The manifest entry a reference-value reason comes from (an RTMR's own index). */
function manifestPath(code: string, details: VerifyReason['details']): string | undefined {
  const path = REASON_PATH[code as VerifyReasonCode]
  if (path === undefined) return undefined
  if (code === 'TDX_RTMR_NOT_ALLOWED' && typeof details['rtmr'] === 'number') return `${path}.${details['rtmr']}`
  if (code === 'TDX_TD_ATTRIBUTES_NOT_ALLOWED' && Array.isArray(details['bits'])) {
    const bits = details['bits'] as string[]
    if (bits.includes('MIGRATABLE')) return 'referenceValues.tdx.allowMigratable'
    if (bits.includes('TUD profiling bits')) return 'referenceValues.tdx.allowDebug'
  }
  return path
}
