// Public surface of the attestation component: the only import target for
// other components. Named re-exports only.

export { AttestationError, ParseError, type AttestationCode } from './errors.js'
export { ByteReader, readLayout, type FieldSpec, type LayoutFields } from './bytes.js'
export {
  toHex,
  fromHex,
  bytesEqual,
  decodeEvidenceFile,
  parseCertificates,
  certFingerprint,
  type CertInput,
  type InputEncoding,
} from './encoding.js'
export {
  checkReportData,
  claimsToJson,
  REPORT_DATA_BYTES,
  type TeeKind,
  type VerifyReason,
  type VerifyReasonCode,
  type VerifyResult,
} from './verifier.js'
export {
  parseSnpReport,
  decodeTcb,
  decodePolicy,
  decodeSignerInfo,
  SNP_REPORT_BYTES,
  SNP_SIGNED_BYTES,
  SNP_REPORT_LAYOUT,
  type SnpReport,
  type SnpProduct,
  type SnpTcb,
  type SnpPolicy,
  type SnpSignerInfo,
} from './snp/report.js'
export { parseSnpCertTable, buildSnpCertTable, isSnpCertTable, CERT_TABLE_GUID, type SnpCertTable, type CertTableRole } from './snp/cert-table.js'
export { amdRoots, amdChains, AMD_ARK_FINGERPRINTS, type AmdChain } from './snp/roots.js'
export { AMD_OID } from './snp/vcek.js'
export {
  verifySnp,
  snpSignatureP1363,
  type SnpVerifyOptions,
  type SnpPolicyOptions,
  type SnpTcbMinimum,
  type SnpClaims,
  type SnpEndorsementClaims,
  type SnpVerifyResult,
} from './snp/verify.js'
export { parseTdxQuote, TDX_BODY_LAYOUT, TDX_HEADER_LAYOUT, QE_REPORT_LAYOUT, type TdxQuote, type TdxBody, type QeReport } from './tdx/quote.js'
export { intelSgxRootCa, INTEL_SGX_ROOT_CA_SHA256 } from './tdx/roots.js'
export { verifyTdx, type TdxVerifyOptions, type TdxPolicyOptions, type TdxClaims, type TdxVerifyResult } from './tdx/verify.js'
export {
  bindReportData,
  type Evidence,
  type EvidenceCerts,
  type EvidenceTee,
  type EvidenceProvider,
  type EvidenceProviderKind,
  type GetEvidenceOptions,
} from './provider.js'
export { ProviderError, type ProviderCode } from './providers/errors.js'
export { ConfigfsTsmProvider, nodeTsmFs, DEFAULT_TSM_REPORT_ROOT, type TsmFs, type TsmTee, type ConfigfsTsmOptions } from './providers/configfs-tsm.js'
export {
  AttestationAgentProvider,
  normalizeAaEvidence,
  AA_SERVICE,
  DEFAULT_AA_SOCKET,
  type AttestationAgentOptions,
} from './providers/attestation-agent.js'
export { SimulatedProvider, SIMULATED_ROOT_CN, type SimulatedOptions } from './providers/simulated.js'
export { selectProvider, DEFAULT_TEE_DEVICES, type SelectOptions, type Selection } from './providers/select.js'
