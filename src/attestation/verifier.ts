// The shape every evidence verifier returns, so the coordinator can treat
// SEV-SNP, TDX and simulated evidence alike: the claims it read, and every
// check that failed as a typed reason. `verified` is true only with no reasons.
//
// Verifiers are pure: the verification time is a parameter, certificates are
// inputs, nothing is fetched. Input that cannot be parsed throws an
// AttestationError instead (there are no claims to return).

import type { Details } from '../errors.js'
import { bytesEqual, toHex } from './encoding.js'

export type TeeKind = 'snp' | 'tdx' | 'simulated'

export type VerifyReasonCode =
  // Shared by every TEE.
  | 'REPORT_DATA_MISMATCH'
  | 'CERT_NOT_YET_VALID'
  | 'CERT_EXPIRED'
  // SEV-SNP report structure.
  | 'SNP_SIGNATURE_ALGO_UNSUPPORTED'
  | 'SNP_RESERVED_NONZERO'
  | 'SNP_SIGNATURE_PADDING_NONZERO'
  | 'SNP_POLICY_MALFORMED'
  | 'SNP_SIGNING_KEY_UNSUPPORTED'
  // SEV-SNP endorsement key (VCEK / VLEK) and chain.
  | 'SNP_ENDORSEMENT_MISSING'
  | 'SNP_ENDORSEMENT_MALFORMED'
  | 'SNP_ENDORSEMENT_KIND_MISMATCH'
  | 'SNP_PRODUCT_UNKNOWN'
  | 'SNP_PRODUCT_MISMATCH'
  | 'SNP_CHAIN_MISSING'
  | 'SNP_ARK_NOT_TRUSTED'
  | 'SNP_ARK_SIGNATURE_INVALID'
  | 'SNP_ASK_SIGNATURE_INVALID'
  | 'SNP_VCEK_SIGNATURE_INVALID'
  | 'SNP_VCEK_EXTENSION_MISSING'
  | 'SNP_TCB_MISMATCH'
  | 'SNP_CHIP_ID_MISMATCH'
  | 'SNP_REPORT_SIGNATURE_INVALID'
  // SEV-SNP policy.
  | 'SNP_DEBUG_ALLOWED'
  | 'SNP_TCB_BELOW_MINIMUM'
  | 'SNP_LAUNCH_TCB_BELOW_MINIMUM'
  | 'SNP_MIGRATE_MA_ALLOWED'
  | 'SNP_GUEST_POLICY_MISMATCH'
  | 'SNP_ABI_BELOW_MINIMUM'
  | 'SNP_VMPL_MISMATCH'
  | 'SNP_MEASUREMENT_NOT_ALLOWED'
  | 'SNP_HOST_DATA_NOT_ALLOWED'
  // TDX quote structure and signatures.
  | 'TDX_ATTESTATION_KEY_TYPE_UNSUPPORTED'
  | 'TDX_TEE_TYPE_UNSUPPORTED'
  | 'TDX_QE_VENDOR_UNKNOWN'
  | 'TDX_ATTESTATION_KEY_INVALID'
  | 'TDX_QUOTE_SIGNATURE_INVALID'
  | 'TDX_QE_REPORT_SIGNATURE_INVALID'
  | 'TDX_QE_REPORT_DATA_MISMATCH'
  | 'TDX_QE_IDENTITY_MISMATCH'
  | 'TDX_QE_ATTRIBUTES_MISMATCH'
  | 'TDX_MODULE_NOT_INTEL'
  // TDX PCK chain.
  | 'TDX_PCK_CHAIN_MALFORMED'
  | 'TDX_ROOT_NOT_TRUSTED'
  | 'TDX_CHAIN_SIGNATURE_INVALID'
  // TDX policy.
  | 'TDX_DEBUG_ENABLED'
  | 'TDX_MR_TD_NOT_ALLOWED'
  | 'TDX_MR_CONFIG_ID_NOT_ALLOWED'
  | 'TDX_RTMR_NOT_ALLOWED'
  | 'TDX_TD_ATTRIBUTES_NOT_ALLOWED'
  | 'TDX_XFAM_NOT_ALLOWED'
  | 'TDX_MR_SEAM_NOT_ALLOWED'
  | 'TDX_QE_SVN_BELOW_MINIMUM'
  | 'TDX_TEE_TCB_SVN_BELOW_MINIMUM'

export interface VerifyReason {
  readonly code: VerifyReasonCode
  readonly message: string
  readonly details: Details
}

export interface VerifyResult<C extends { readonly reportData: Uint8Array }> {
  readonly tee: TeeKind
  readonly verified: boolean
  readonly reasons: readonly VerifyReason[]
  readonly claims: C
}

export function reason(code: VerifyReasonCode, message: string, details: Details = {}): VerifyReason {
  return { code, message, details }
}

export const REPORT_DATA_BYTES = 64

/**
 * The evidence binding: REPORT_DATA must equal `expected` exactly. A shorter
 * `expected` is zero-padded to 64 bytes, as Kata's attestation agent does with
 * runtime data; a longer one can never match.
 */
export function checkReportData(actual: Uint8Array, expected: Uint8Array): VerifyReason | undefined {
  const want = new Uint8Array(REPORT_DATA_BYTES)
  if (expected.byteLength <= REPORT_DATA_BYTES) want.set(expected)
  if (expected.byteLength <= REPORT_DATA_BYTES && bytesEqual(actual, want)) return undefined
  return reason('REPORT_DATA_MISMATCH', `report data ${toHex(actual)} != expected ${toHex(expected)}`, {
    actual: toHex(actual),
    expected: toHex(expected),
  })
}

/** Validity of a certificate at `at`; `role` names it in the reason (e.g. 'vcek', 'ark'). */
export function checkValidity(
  role: string,
  cert: { validFrom: string; validTo: string; subject: string },
  at: Date,
): VerifyReason | undefined {
  const from = new Date(cert.validFrom)
  const to = new Date(cert.validTo)
  const details = { cert: role, at: at.toISOString(), notBefore: from.toISOString(), notAfter: to.toISOString() }
  if (at.getTime() < from.getTime()) {
    return reason('CERT_NOT_YET_VALID', `${role} certificate not valid before ${details.notBefore} (at ${details.at})`, details)
  }
  if (at.getTime() > to.getTime()) {
    return reason('CERT_EXPIRED', `${role} certificate expired ${details.notAfter} (at ${details.at})`, details)
  }
  return undefined
}

/**
 * Claims as JSON: byte fields become lowercase hex, bigints hex strings with
 * 0x, nested objects and arrays keep their shape.
 */
export function claimsToJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return toHex(value)
  if (typeof value === 'bigint') return `0x${value.toString(16).padStart(16, '0')}`
  if (value instanceof Date) return value.toISOString()
  if (Array.isArray(value)) return value.map(claimsToJson)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = claimsToJson(v)
    return out
  }
  return value
}
