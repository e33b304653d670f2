// Public surface of the attestation component: the only import target for
// other components. Named re-exports only.

export { AttestationError, ParseError, type AttestationCode } from './errors.js'
export { ByteReader } from './bytes.js'
export { toHex, fromHex, bytesEqual, decodeEvidenceFile, type InputEncoding } from './encoding.js'
export {
  checkReportData,
  claimsToJson,
  REPORT_DATA_BYTES,
  type TeeKind,
  type VerifyReason,
  type VerifyReasonCode,
  type VerifyResult,
} from './verifier.js'
