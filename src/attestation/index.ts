// Public surface of the attestation component: what other components use, nothing
// more. Tests of this component import its modules directly.

export { AttestationError, ParseError, type AttestationCode } from './errors.js'
export { toHex, fromHex, decodeEvidenceFile, certFingerprint } from './encoding.js'
export { checkReportData, claimsToJson, type VerifyReason, type VerifyReasonCode } from './verifier.js'
export { parseSnpReport, SNP_REPORT_BYTES } from './snp/report.js'
export { isSnpCertTable } from './snp/cert-table.js'
export { verifySnp, type SnpPolicyOptions } from './snp/verify.js'
export { parseTdxQuote } from './tdx/quote.js'
export { verifyTdx, type TdxPolicyOptions } from './tdx/verify.js'
export { bindReportData, type Evidence, type EvidenceProvider } from './provider.js'
export { ProviderError, type ProviderCode } from './providers/errors.js'
export { ConfigfsTsmProvider } from './providers/configfs-tsm.js'
export { AttestationAgentProvider } from './providers/attestation-agent.js'
export { SimulatedProvider, type SimulatedOptions } from './providers/simulated.js'
export { selectProvider } from './providers/select.js'
