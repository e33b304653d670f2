// TDX quote verification (quote v4/v5, QE report certification data): the
// attestation key signs header‖body, the PCK signs the QE report, the QE report
// binds the attestation key, and the PCK chains to Intel's pinned SGX Root CA.
// Then the caller's policy. TCB-status collateral (TCB info, QE identity, CRLs)
// is out of scope: it needs network or a collateral input.

import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject, type X509Certificate } from 'node:crypto'
import { ByteReader } from '../bytes.js'
import { bytesEqual, certFingerprint, certificateExtensions, commonName, decodeOid, derChildren, isAllZero, parseCertificates, readDer, toHex } from '../encoding.js'
import { isMeshError } from '../../errors.js'
import { checkReportData, checkValidity, reason, type VerifyReason, type VerifyResult } from '../verifier.js'
import { CERT_DATA_PCK_CHAIN, parseTdxQuote, TDX_ATTESTATION_KEY_ECDSA_P256, TDX_TEE_TYPE, type TdxQuote } from './quote.js'
import { intelSgxRootCa } from './roots.js'

export const INTEL_QE_VENDOR_ID = '939a7233f79c4ca9940a0db3957f0607'
export const INTEL_TDQE_MRSIGNER = 'dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5'
export const INTEL_TDQE_ISVPRODID = 2

// Intel's identity of the TD quoting enclave (QE identity collateral, TD_QE): MISCSELECT
// and ATTRIBUTES under their masks. The attributes say INIT and PROVISIONKEY, and above
// all no DEBUG (bit 1): a debuggable QE's key could sign anything.
export const INTEL_TDQE_MISCSELECT = { value: 0x00000000, mask: 0xffffffff } as const
export const INTEL_TDQE_ATTRIBUTES = { value: '11000000000000000000000000000000', mask: 'fbffffffffffffff0000000000000000' } as const

/** TD_ATTRIBUTES bits (TDX module ABI), by position in the little-endian u64. */
export const TD_ATTRIBUTE_BITS = {
  debug: 0,
  hgsPlusProf: 4,
  perfProf: 5,
  pmtProf: 6,
  icssd: 16,
  lass: 27,
  septVeDisable: 28,
  migratable: 29,
  pks: 30,
  kl: 31,
  tpa: 62,
  perfmon: 63,
} as const
// TUD (bits 7:0) is "TD under debug": DEBUG and the profiling bits let the host observe the TD.
const TD_ATTRIBUTES_TUD = 0xffn
const TD_ATTRIBUTES_KNOWN = Object.values(TD_ATTRIBUTE_BITS).reduce((m, b) => m | (1n << BigInt(b)), 0n)

const SGX_EXTENSION_OID = '1.2.840.113741.1.13.1'
const SGX_FMSPC_OID = '1.2.840.113741.1.13.1.4'

export interface TdxPolicyOptions {
  /** Accept a TD with the DEBUG attribute (host can read its memory). Default false. */
  readonly allowDebug?: boolean
  /** Allow-list of MRTD values (48 bytes each). */
  readonly mrTd?: readonly Uint8Array[]
  /** Allow-lists per RTMR index (0-3); an index left undefined is not checked. */
  readonly rtmr?: readonly (readonly Uint8Array[] | undefined)[]
  /** Allow-list of MRCONFIGID values (48 bytes each; Kata: initdata digest, zero-padded). */
  readonly mrConfigId?: readonly Uint8Array[]
  /** Per-byte minimum of TEE_TCB_SVN (16 bytes). */
  readonly minimumTeeTcbSvn?: Uint8Array
  /** A migratable TD (TD_ATTRIBUTES.MIGRATABLE) may be exported by a migration TD. Default false. */
  readonly allowMigratable?: boolean
  /** Allow-list of TD_ATTRIBUTES values (8 bytes each, as in the quote). */
  readonly tdAttributes?: readonly Uint8Array[]
  /** Allow-list of XFAM values (8 bytes each): the CPU state the TD may use. */
  readonly xfam?: readonly Uint8Array[]
  /** Allow-list of MRSEAM values (48 bytes each): the TDX module. */
  readonly mrSeam?: readonly Uint8Array[]
  /** Minimum ISVSVN of the quoting enclave. */
  readonly minimumQeSvn?: number
  /** Expected REPORT_DATA (zero-padded to 64 bytes). */
  readonly reportData?: Uint8Array
}

export interface TdxVerifyOptions {
  /** Verification time: certificate validity is checked at this instant. */
  readonly at: Date
  readonly policy?: TdxPolicyOptions
  /** Replaces the trusted root (default: Intel SGX Root CA). For tests of the chain logic. */
  readonly roots?: { readonly root: readonly X509Certificate[] }
}

export interface TdxClaims {
  readonly reportData: Uint8Array
  readonly mrTd: Uint8Array
  readonly rtmr: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array]
  readonly mrConfigId: Uint8Array
  readonly mrOwner: Uint8Array
  readonly mrOwnerConfig: Uint8Array
  readonly mrSeam: Uint8Array
  readonly mrSignerSeam: Uint8Array
  readonly seamAttributes: Uint8Array
  readonly tdAttributes: Uint8Array
  readonly xfam: Uint8Array
  readonly teeTcbSvn: Uint8Array
  readonly teeTcbSvn2: Uint8Array | undefined
  readonly mrServiceTd: Uint8Array | undefined
  /** TD_ATTRIBUTES bit 0 (TUD.DEBUG). */
  readonly debug: boolean
  readonly version: number
  readonly bodyType: number
  readonly attestationKeyType: number
  readonly teeType: number
  readonly qeVendorId: Uint8Array
  readonly qe: {
    readonly mrEnclave: Uint8Array
    readonly mrSigner: Uint8Array
    readonly isvProdId: number
    readonly isvSvn: number
    readonly attributes: Uint8Array
    readonly miscSelect: number
  }
  readonly pck:
    | {
        readonly subject: string | undefined
        readonly issuer: string | undefined
        readonly notBefore: Date
        readonly notAfter: Date
        readonly sha256: string
        readonly fmspc: Uint8Array | undefined
        readonly rootSha256: string | undefined
      }
    | undefined
}

export type TdxVerifyResult = VerifyResult<TdxClaims>

/** Big-endian X‖Y → KeyObject; undefined if it is not a P-256 point. */
export function attestationPublicKey(xy: Uint8Array): KeyObject | undefined {
  if (xy.byteLength !== 64) return undefined
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: Buffer.from(xy.subarray(0, 32)).toString('base64url'), y: Buffer.from(xy.subarray(32)).toString('base64url') },
      format: 'jwk',
    })
  } catch {
    return undefined
  }
}

function p256Verify(data: Uint8Array, key: KeyObject, signature: Uint8Array): boolean {
  try {
    return cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature)
  } catch {
    return false
  }
}

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.verify(issuer.publicKey)
  } catch {
    return false
  }
}

/** FMSPC (6 bytes) from the PCK's SGX extension; undefined if absent or unreadable. */
export function pckFmspc(cert: X509Certificate): Uint8Array | undefined {
  try {
    const sgx = certificateExtensions(new Uint8Array(cert.raw)).get(SGX_EXTENSION_OID)
    if (sgx === undefined) return undefined
    const seq = readDer(new ByteReader(sgx.value), 'sgxExtensions')
    for (const item of derChildren(seq, 'sgxExtensions')) {
      const [oid, value] = derChildren(item, 'sgxExtension')
      if (oid?.tag === 0x06 && decodeOid(oid.value.bytes) === SGX_FMSPC_OID && value?.tag === 0x04) return Uint8Array.from(value.value.bytes)
    }
    return undefined
  } catch (err) {
    if (isMeshError(err)) return undefined
    throw err
  }
}

export function verifyTdx(input: Uint8Array | TdxQuote, opts: TdxVerifyOptions): TdxVerifyResult {
  const quote = input instanceof Uint8Array ? parseTdxQuote(input) : input
  const reasons: VerifyReason[] = []
  const { header } = quote

  if (header.attestationKeyType !== TDX_ATTESTATION_KEY_ECDSA_P256) {
    reasons.push(reason('TDX_ATTESTATION_KEY_TYPE_UNSUPPORTED', `attestation key type ${header.attestationKeyType}, expected 2 (ECDSA P-256)`, { attestationKeyType: header.attestationKeyType }))
  }
  if (header.teeType !== TDX_TEE_TYPE) {
    reasons.push(reason('TDX_TEE_TYPE_UNSUPPORTED', `TEE type 0x${header.teeType.toString(16)}, expected 0x81 (TDX)`, { teeType: header.teeType }))
  }
  if (toHex(header.qeVendorId) !== INTEL_QE_VENDOR_ID) {
    reasons.push(reason('TDX_QE_VENDOR_UNKNOWN', `QE vendor ${toHex(header.qeVendorId)} is not Intel's`, { qeVendorId: toHex(header.qeVendorId) }))
  }

  // 1. The attestation key signs header‖body.
  const attKey = attestationPublicKey(quote.attestationKey)
  if (attKey === undefined) {
    reasons.push(reason('TDX_ATTESTATION_KEY_INVALID', 'attestation key is not a P-256 point', { attestationKey: toHex(quote.attestationKey) }))
  } else if (!p256Verify(quote.signedBytes, attKey, quote.signature)) {
    reasons.push(reason('TDX_QUOTE_SIGNATURE_INVALID', 'quote signature does not verify with the attestation key', { signedBytes: quote.signedBytes.byteLength }))
  }

  // 2. The QE report binds the attestation key: SHA-256(key ‖ auth data) ‖ 32 zero bytes.
  const binding = createHash('sha256').update(quote.attestationKey).update(quote.qeAuthData).digest()
  const qeData = quote.qeReport.reportData
  if (!bytesEqual(qeData.subarray(0, 32), binding) || !isAllZero(qeData.subarray(32))) {
    reasons.push(reason('TDX_QE_REPORT_DATA_MISMATCH', 'QE report data does not bind the attestation key', { expected: toHex(binding), actual: toHex(qeData) }))
  }
  if (toHex(quote.qeReport.mrSigner) !== INTEL_TDQE_MRSIGNER || quote.qeReport.isvProdId !== INTEL_TDQE_ISVPRODID) {
    reasons.push(reason('TDX_QE_IDENTITY_MISMATCH', `QE mrsigner ${toHex(quote.qeReport.mrSigner)} / isvprodid ${quote.qeReport.isvProdId} is not Intel's TDQE`, { mrSigner: toHex(quote.qeReport.mrSigner), isvProdId: quote.qeReport.isvProdId }))
  }

  const qe = quote.qeReport
  const attrs = qe.attributes
  const maskedAttrs = Buffer.from(attrs.map((b, i) => b & Buffer.from(INTEL_TDQE_ATTRIBUTES.mask, 'hex')[i]!)).toString('hex')
  if ((qe.miscSelect & INTEL_TDQE_MISCSELECT.mask) >>> 0 !== INTEL_TDQE_MISCSELECT.value || maskedAttrs !== INTEL_TDQE_ATTRIBUTES.value) {
    reasons.push(reason('TDX_QE_ATTRIBUTES_MISMATCH', `QE attributes ${toHex(attrs)} / miscselect 0x${qe.miscSelect.toString(16)} are not Intel's TDQE (DEBUG, or another enclave)`, { attributes: toHex(attrs), miscSelect: qe.miscSelect }))
  }
  // Intel's TDX module is signed by Intel: MRSIGNERSEAM zero, SEAM attributes zero.
  if (!isAllZero(quote.body.mrSignerSeam) || !isAllZero(quote.body.seamAttributes)) {
    reasons.push(reason('TDX_MODULE_NOT_INTEL', `TDX module signer ${toHex(quote.body.mrSignerSeam)} / SEAM attributes ${toHex(quote.body.seamAttributes)} are not Intel's (zero)`, { mrSignerSeam: toHex(quote.body.mrSignerSeam), seamAttributes: toHex(quote.body.seamAttributes) }))
  }

  // 3. The PCK signs the QE report, and chains to the pinned root.
  const pck = checkPckChain(quote, opts, reasons)

  const claims = tdxClaims(quote, pck)
  reasons.push(...checkPolicy(claims, opts.policy ?? {}))
  return { tee: 'tdx', verified: reasons.length === 0, reasons, claims }
}

function checkPckChain(quote: TdxQuote, opts: TdxVerifyOptions, reasons: VerifyReason[]): TdxClaims['pck'] {
  if (quote.pckCertDataType !== CERT_DATA_PCK_CHAIN) {
    reasons.push(reason('TDX_PCK_CHAIN_MALFORMED', `inner certification data type ${quote.pckCertDataType}, expected 5 (PCK chain)`, { pckCertDataType: quote.pckCertDataType }))
    return undefined
  }
  let certs: X509Certificate[]
  try {
    certs = parseCertificates(quote.pckCertData, 'pckChain')
  } catch (err) {
    if (!isMeshError(err)) throw err
    reasons.push(reason('TDX_PCK_CHAIN_MALFORMED', err.message, { field: 'pckChain' }))
    return undefined
  }
  const [leaf, intermediate, root] = certs
  if (certs.length !== 3 || leaf === undefined || intermediate === undefined || root === undefined) {
    reasons.push(reason('TDX_PCK_CHAIN_MALFORMED', `PCK chain has ${certs.length} certificates, expected 3 (PCK, CA, root)`, { count: certs.length }))
    return undefined
  }
  const leafKey = leaf.publicKey
  if (leafKey.asymmetricKeyType !== 'ec' || leafKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    reasons.push(reason('TDX_PCK_CHAIN_MALFORMED', 'PCK key is not ECDSA P-256', { field: 'pck.publicKey' }))
  } else if (!p256Verify(quote.qeReportBytes, leafKey, quote.qeReportSignature)) {
    reasons.push(reason('TDX_QE_REPORT_SIGNATURE_INVALID', 'QE report signature does not verify with the PCK', { pck: certFingerprint(leaf) }))
  }

  // Pin by fingerprint, never by name: any certificate can claim "Intel SGX Root CA".
  const trusted = opts.roots?.root ?? [intelSgxRootCa()]
  const rootSha = certFingerprint(root)
  if (!trusted.some((t) => certFingerprint(t) === rootSha)) {
    reasons.push(reason('TDX_ROOT_NOT_TRUSTED', `root ${commonName(root.subject) ?? '?'} (sha256 ${rootSha}) is not the pinned Intel SGX Root CA`, { sha256: rootSha, subject: commonName(root.subject) }))
  }
  for (const [cert, issuer, role] of [[root, root, 'root'], [intermediate, root, 'intermediate'], [leaf, intermediate, 'pck']] as const) {
    if (!signedBy(cert, issuer)) {
      reasons.push(reason('TDX_CHAIN_SIGNATURE_INVALID', `${role} certificate ${commonName(cert.subject) ?? '?'} is not signed by ${commonName(issuer.subject) ?? '?'}`, { cert: role }))
    }
  }
  for (const [cert, role] of [[root, 'root'], [intermediate, 'intermediate'], [leaf, 'pck']] as const) {
    const r = checkValidity(role, cert, opts.at)
    if (r !== undefined) reasons.push(r)
  }
  return {
    subject: commonName(leaf.subject),
    issuer: commonName(leaf.issuer),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    sha256: certFingerprint(leaf),
    fmspc: pckFmspc(leaf),
    rootSha256: rootSha,
  }
}

function tdxClaims(quote: TdxQuote, pck: TdxClaims['pck']): TdxClaims {
  const b = quote.body
  return {
    reportData: b.reportData,
    mrTd: b.mrTd,
    rtmr: [b.rtmr0, b.rtmr1, b.rtmr2, b.rtmr3],
    mrConfigId: b.mrConfigId,
    mrOwner: b.mrOwner,
    mrOwnerConfig: b.mrOwnerConfig,
    mrSeam: b.mrSeam,
    mrSignerSeam: b.mrSignerSeam,
    seamAttributes: b.seamAttributes,
    tdAttributes: b.tdAttributes,
    xfam: b.xfam,
    teeTcbSvn: b.teeTcbSvn,
    teeTcbSvn2: b.teeTcbSvn2,
    mrServiceTd: b.mrServiceTd,
    debug: ((b.tdAttributes[0] ?? 0) & 1) === 1,
    version: quote.header.version,
    bodyType: quote.bodyType,
    attestationKeyType: quote.header.attestationKeyType,
    teeType: quote.header.teeType,
    qeVendorId: quote.header.qeVendorId,
    qe: {
      mrEnclave: quote.qeReport.mrEnclave,
      mrSigner: quote.qeReport.mrSigner,
      isvProdId: quote.qeReport.isvProdId,
      isvSvn: quote.qeReport.isvSvn,
      attributes: quote.qeReport.attributes,
      miscSelect: quote.qeReport.miscSelect,
    },
    pck,
  }
}

function checkPolicy(claims: TdxClaims, policy: TdxPolicyOptions): VerifyReason[] {
  const reasons: VerifyReason[] = []
  if (claims.debug && policy.allowDebug !== true) {
    reasons.push(reason('TDX_DEBUG_ENABLED', 'TD attributes have DEBUG set', { tdAttributes: toHex(claims.tdAttributes) }))
  }
  const attrs = Buffer.from(claims.tdAttributes).readBigUInt64LE(0)
  const bad: string[] = []
  if ((attrs & TD_ATTRIBUTES_TUD & ~1n) !== 0n && policy.allowDebug !== true) bad.push('TUD profiling bits')
  if ((attrs >> BigInt(TD_ATTRIBUTE_BITS.migratable)) & 1n && policy.allowMigratable !== true) bad.push('MIGRATABLE')
  if ((attrs & ~TD_ATTRIBUTES_KNOWN) !== 0n) bad.push(`reserved bits 0x${(attrs & ~TD_ATTRIBUTES_KNOWN).toString(16)}`)
  if (bad.length > 0) {
    reasons.push(reason('TDX_TD_ATTRIBUTES_NOT_ALLOWED', `TD attributes ${toHex(claims.tdAttributes)}: ${bad.join(', ')}`, { tdAttributes: toHex(claims.tdAttributes), bits: bad }))
  }
  for (const [field, code, list, value] of [
    ['TD attributes', 'TDX_TD_ATTRIBUTES_NOT_ALLOWED', policy.tdAttributes, claims.tdAttributes],
    ['XFAM', 'TDX_XFAM_NOT_ALLOWED', policy.xfam, claims.xfam],
    ['MRSEAM', 'TDX_MR_SEAM_NOT_ALLOWED', policy.mrSeam, claims.mrSeam],
  ] as const) {
    if (list !== undefined && !list.some((m) => bytesEqual(m, value))) {
      reasons.push(reason(code, `${field} ${toHex(value)} not in the allow-list`, { field, value: toHex(value) }))
    }
  }
  if (policy.minimumQeSvn !== undefined && claims.qe.isvSvn < policy.minimumQeSvn) {
    reasons.push(reason('TDX_QE_SVN_BELOW_MINIMUM', `QE ISVSVN ${claims.qe.isvSvn} < minimum ${policy.minimumQeSvn}`, { actual: claims.qe.isvSvn, minimum: policy.minimumQeSvn }))
  }
  if (policy.mrTd !== undefined && !policy.mrTd.some((m) => bytesEqual(m, claims.mrTd))) {
    reasons.push(reason('TDX_MR_TD_NOT_ALLOWED', `MRTD ${toHex(claims.mrTd)} not in the allow-list`, { mrTd: toHex(claims.mrTd) }))
  }
  if (policy.mrConfigId !== undefined && !policy.mrConfigId.some((m) => bytesEqual(m, claims.mrConfigId))) {
    reasons.push(reason('TDX_MR_CONFIG_ID_NOT_ALLOWED', `MRCONFIGID ${toHex(claims.mrConfigId)} not in the allow-list`, { mrConfigId: toHex(claims.mrConfigId) }))
  }
  policy.rtmr?.forEach((allowed, i) => {
    const value = claims.rtmr[i]
    if (allowed === undefined || value === undefined) return
    if (!allowed.some((m) => bytesEqual(m, value))) {
      reasons.push(reason('TDX_RTMR_NOT_ALLOWED', `RTMR${i} ${toHex(value)} not in the allow-list`, { rtmr: i, value: toHex(value) }))
    }
  })
  const min = policy.minimumTeeTcbSvn
  if (min !== undefined) {
    for (let i = 0; i < 16; i++) {
      const want = min[i] ?? 0
      const have = claims.teeTcbSvn[i] ?? 0
      if (have < want) {
        reasons.push(reason('TDX_TEE_TCB_SVN_BELOW_MINIMUM', `TEE_TCB_SVN[${i}] ${have} < minimum ${want}`, { index: i, actual: have, minimum: want }))
      }
    }
  }
  if (policy.reportData !== undefined) {
    const r = checkReportData(claims.reportData, policy.reportData)
    if (r !== undefined) reasons.push(r)
  }
  return reasons
}
