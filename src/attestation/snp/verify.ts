// SEV-SNP report verification: structure, endorsement key (VCEK/VLEK), its chain
// to a pinned AMD root, the key's TCB and chip binding, the report signature,
// then the caller's policy. Every failed check adds one reason; nothing stops
// early, so a result lists everything that is wrong.
//
// Trust: by default only AMD's ARKs for Milan, Genoa and Turin (roots.ts).
// `roots` replaces that set; a chain ending in a root that is not AMD's yields
// `tee: 'simulated'`, never 'snp', so simulated evidence cannot pass for real.

import { verify as cryptoVerify, type X509Certificate } from 'node:crypto'
import { bytesEqual, certFingerprint, commonName, isAllZero, parseCertificates, toHex, type CertInput } from '../encoding.js'
import { AttestationError } from '../errors.js'
import { isMeshError } from '../../errors.js'
import { checkReportData, checkValidity, reason, type TeeKind, type VerifyReason, type VerifyResult } from '../verifier.js'
import { parseSnpCertTable } from './cert-table.js'
import {
  decodePolicy,
  decodeSignerInfo,
  decodeTcb,
  parseSnpReport,
  POLICY_MBZ_MASK,
  POLICY_RESERVED_ONE_BIT,
  productFromCpuid,
  productFromName,
  SIGNER_INFO_MBZ_MASK,
  type SnpPolicy,
  type SnpProduct,
  type SnpReport,
  type SnpSignerInfo,
  type SnpTcb,
} from './report.js'
import { AMD_ARK_FINGERPRINTS, amdChains, amdRoots } from './roots.js'
import { readEndorsement, type EndorsementInfo, type EndorsementKind } from './vcek.js'

export const SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1

export interface SnpTcbMinimum {
  readonly bootloader?: number
  readonly tee?: number
  readonly snp?: number
  readonly microcode?: number
  readonly fmc?: number
}

export interface SnpPolicyOptions {
  /** Accept a guest whose policy allows debugging (host can read its memory). Default false. */
  readonly allowDebug?: boolean
  /** Per-component minimum of REPORTED_TCB, the TCB the VCEK endorses. */
  readonly minimumTcb?: SnpTcbMinimum
  /** Per-component minimum of LAUNCH_TCB, the TCB the guest was launched under. */
  readonly minimumLaunchTcb?: SnpTcbMinimum
  /** What the guest policy must (not) allow beyond DEBUG; defaults refuse a migration agent. */
  readonly guestPolicy?: SnpGuestPolicyRequirements
  /** Minimum firmware ABI version, checked against CURRENT and COMMITTED major.minor. */
  readonly minimumAbi?: { readonly major: number; readonly minor: number }
  /** Required VMPL of the requesting guest code. */
  readonly vmpl?: number
  /** Allow-list of launch measurements (48 bytes each). */
  readonly measurements?: readonly Uint8Array[]
  /** Allow-list of HOST_DATA values (32 bytes each; Kata: the initdata digest). */
  readonly hostData?: readonly Uint8Array[]
  /** Expected REPORT_DATA (zero-padded to 64 bytes). */
  readonly reportData?: Uint8Array
  /** Require this product. */
  readonly product?: SnpProduct
}

/**
 * Guest policy requirements, as go-sev-guest compares policies: the report's policy may
 * be no less restrictive than this. Defaults: SMT may be allowed, a migration agent and
 * CXL may not, nothing is required.
 */
export interface SnpGuestPolicyRequirements {
  /** MIGRATE_MA: a migration agent may export the guest's memory. Default false. */
  readonly allowMigrationAgent?: boolean
  /** SMT: the guest may share cores with others. Default true (hosts commonly enable it). */
  readonly allowSmt?: boolean
  /** CXL_ALLOW: CXL-attached memory may back the guest. Default false. */
  readonly allowCxl?: boolean
  readonly requireSingleSocket?: boolean
  readonly requireMemAes256Xts?: boolean
  readonly requireRaplDisabled?: boolean
  readonly requireCiphertextHiding?: boolean
  readonly requirePageSwapDisabled?: boolean
  /** Minimum ABI major.minor the guest policy demands of the firmware. */
  readonly minimumAbi?: { readonly major: number; readonly minor: number }
}

export interface SnpVerifyOptions {
  /** Verification time: certificate validity is checked at this instant. */
  readonly at: Date
  /** The VCEK or VLEK (DER, PEM, hex/base64, or X509Certificate). Else taken from `certTable`. */
  readonly vcek?: CertInput
  /** ASK (or ASVK for a VLEK) then ARK. Else from `certTable`, else AMD's pinned chain for the product. */
  readonly chain?: CertInput | readonly CertInput[]
  /** The certificate table of an extended report (auxblob). */
  readonly certTable?: Uint8Array
  readonly policy?: SnpPolicyOptions
  /**
   * Replaces the trusted roots (default: AMD's pinned ARKs). For simulated
   * evidence pass the locally generated root, e.g. `{ ark: [simRoot] }`; to
   * trust it alongside AMD's, `{ ark: [...amdRoots(), simRoot] }`. A result
   * whose chain ends in a non-AMD root has `tee: 'simulated'`. The simulated
   * VCEK must carry the AMD extensions (SPLs 1.3.6.1.4.1.3704.1.3.{1,2,3,8},
   * hwID .4 for a VCEK) matching the report, and an ASK named `SEV-<product>`
   * when no `chain` is passed (there is then none to pick).
   */
  readonly roots?: { readonly ark: readonly X509Certificate[] }
}

export interface SnpEndorsementClaims {
  readonly kind: EndorsementKind | undefined
  readonly subject: string | undefined
  readonly issuer: string | undefined
  readonly productName: string | undefined
  readonly serialNumber: string
  readonly notBefore: Date
  readonly notAfter: Date
  readonly sha256: string
  readonly chain: { readonly ask: string; readonly ark: string } | undefined
}

export interface SnpClaims {
  readonly reportData: Uint8Array
  readonly measurement: Uint8Array
  readonly hostData: Uint8Array
  readonly chipId: Uint8Array
  readonly reportId: Uint8Array
  readonly reportIdMa: Uint8Array
  readonly familyId: Uint8Array
  readonly imageId: Uint8Array
  readonly idKeyDigest: Uint8Array
  readonly authorKeyDigest: Uint8Array
  readonly version: number
  readonly guestSvn: number
  readonly vmpl: number
  readonly policy: SnpPolicy
  readonly platformInfo: bigint
  readonly signerInfo: SnpSignerInfo
  readonly product: SnpProduct | undefined
  readonly currentTcb: SnpTcb
  readonly reportedTcb: SnpTcb
  readonly committedTcb: SnpTcb
  readonly launchTcb: SnpTcb
  readonly currentFirmware: { readonly major: number; readonly minor: number; readonly build: number }
  readonly committedFirmware: { readonly major: number; readonly minor: number; readonly build: number }
  /** Family, model, stepping from the report (version 3 and later). */
  readonly cpuid: { readonly family: number; readonly model: number; readonly stepping: number } | undefined
  readonly launchMitVector: bigint | undefined
  readonly currentMitVector: bigint | undefined
  readonly endorsement: SnpEndorsementClaims | undefined
}

export type SnpVerifyResult = VerifyResult<SnpClaims>

/** Report bytes that must be zero, by version: [field, from, to) within the report fields. */
function mbzFields(report: SnpReport): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [
    ['reserved04c', report.reserved04c],
    ['reserved18b', report.reserved18b],
    ['reserved1eb', report.reserved1eb],
    ['reserved1ef', report.reserved1ef],
    ['reserved208', report.reserved208],
  ]
  if (report.version < 3) out.push(['cpuid', Uint8Array.of(report.cpuidFamId, report.cpuidModId, report.cpuidStep)])
  if (report.version < 5) {
    const mit = new Uint8Array(16)
    const v = new DataView(mit.buffer)
    v.setBigUint64(0, report.launchMitVector, true)
    v.setBigUint64(8, report.currentMitVector, true)
    out.push(['mitVectors', mit])
  }
  return out
}

function checkStructure(report: SnpReport): VerifyReason[] {
  const reasons: VerifyReason[] = []
  if (report.signatureAlgo !== SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384) {
    reasons.push(reason('SNP_SIGNATURE_ALGO_UNSUPPORTED', `signature algorithm ${report.signatureAlgo}, expected 1 (ECDSA P-384 SHA-384)`, { signatureAlgo: report.signatureAlgo }))
  }
  for (const [field, bytes] of mbzFields(report)) {
    if (!isAllZero(bytes)) reasons.push(reason('SNP_RESERVED_NONZERO', `${field} must be zero, is ${toHex(bytes)}`, { field, value: toHex(bytes) }))
  }
  if ((report.signerInfo & SIGNER_INFO_MBZ_MASK) !== 0) {
    reasons.push(reason('SNP_RESERVED_NONZERO', `SIGNER_INFO reserved bits set: 0x${report.signerInfo.toString(16)}`, { field: 'signerInfo', value: report.signerInfo }))
  }
  if (((report.policy >> POLICY_RESERVED_ONE_BIT) & 1n) !== 1n || (report.policy & POLICY_MBZ_MASK) !== 0n) {
    reasons.push(reason('SNP_POLICY_MALFORMED', `guest policy 0x${report.policy.toString(16)}: bit 17 must be 1 and bits 63:26 zero`, { policy: `0x${report.policy.toString(16)}` }))
  }
  // R and S are 72-byte fields holding 48-byte scalars; everything after S is reserved too.
  const pads: [string, Uint8Array][] = [
    ['signature.r', report.signatureR.subarray(48)],
    ['signature.s', report.signatureS.subarray(48)],
    ['signature.reserved', report.signature.subarray(0x90)],
  ]
  for (const [field, bytes] of pads) {
    if (!isAllZero(bytes)) reasons.push(reason('SNP_SIGNATURE_PADDING_NONZERO', `${field} padding must be zero`, { field }))
  }
  const signer = decodeSignerInfo(report.signerInfo)
  if (signer.signingKey !== 'vcek' && signer.signingKey !== 'vlek') {
    reasons.push(reason('SNP_SIGNING_KEY_UNSUPPORTED', `SIGNER_INFO names signing key "${signer.signingKey}"; only VCEK and VLEK are verifiable`, { signingKey: signer.signingKey }))
  }
  return reasons
}

/** Low 48 bytes of each little-endian 72-byte component, reversed: IEEE P1363 r‖s. */
export function snpSignatureP1363(report: Pick<SnpReport, 'signatureR' | 'signatureS'>): Uint8Array {
  const out = new Uint8Array(96)
  out.set(report.signatureR.slice(0, 48).reverse(), 0)
  out.set(report.signatureS.slice(0, 48).reverse(), 48)
  return out
}

function verifySignature(report: SnpReport, key: X509Certificate): boolean {
  try {
    return cryptoVerify('sha384', report.signedBytes, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, snpSignatureP1363(report))
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

function isP384(cert: X509Certificate): boolean {
  const key = cert.publicKey
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'secp384r1'
}

interface ChainChoice {
  readonly ask: X509Certificate
  readonly ark: X509Certificate
}

function chooseChain(
  opts: SnpVerifyOptions,
  table: ReturnType<typeof parseSnpCertTable> | undefined,
  kind: EndorsementKind | undefined,
  product: SnpProduct | undefined,
  reasons: VerifyReason[],
): ChainChoice | undefined {
  if (opts.chain !== undefined) {
    const certs = parseCertificates(opts.chain as CertInput | CertInput[], 'chain')
    if (certs.length !== 2) {
      throw new AttestationError('ATTESTATION_BAD_INPUT', `chain: expected 2 certificates (ASK then ARK), got ${certs.length}`, { field: 'chain', count: certs.length })
    }
    return { ask: certs[0]!, ark: certs[1]! }
  }
  if (table?.ask !== undefined && table.ark !== undefined) return { ask: table.ask, ark: table.ark }
  // AMD pins only VCEK chains; a VLEK's ASVK must come with the evidence.
  if (kind === 'vlek') {
    reasons.push(reason('SNP_CHAIN_MISSING', 'a VLEK needs its ASVK and ARK passed as the chain', { kind }))
    return undefined
  }
  if (product === undefined) {
    reasons.push(reason('SNP_PRODUCT_UNKNOWN', 'cannot pick a pinned AMD chain: no product in the VCEK or the report', {}))
    return undefined
  }
  return amdChains()[product]
}

export function verifySnp(input: Uint8Array | SnpReport, opts: SnpVerifyOptions): SnpVerifyResult {
  const report = input instanceof Uint8Array ? parseSnpReport(input) : input
  const reasons = checkStructure(report)
  const signer = decodeSignerInfo(report.signerInfo)
  const cpuidProduct = productFromCpuid(report)
  const table = opts.certTable !== undefined ? parseSnpCertTable(opts.certTable) : undefined

  let endorsement: X509Certificate | undefined
  if (opts.vcek !== undefined) endorsement = parseCertificates(opts.vcek, 'vcek')[0]
  else endorsement = signer.signingKey === 'vlek' ? table?.vlek : table?.vcek

  let product = cpuidProduct
  let endorsementClaims: SnpEndorsementClaims | undefined
  let tee: TeeKind = 'snp'

  if (endorsement === undefined) {
    reasons.push(reason('SNP_ENDORSEMENT_MISSING', `no ${signer.signingKey === 'vlek' ? 'VLEK' : 'VCEK'} given and none in a certificate table`, { signingKey: signer.signingKey }))
  } else {
    let info: EndorsementInfo | undefined
    try {
      info = readEndorsement(endorsement)
    } catch (err) {
      if (!isMeshError(err) || err.code !== 'ATTESTATION_MALFORMED') throw err
      reasons.push(reason('SNP_ENDORSEMENT_MALFORMED', `endorsement key certificate: ${err.message}`, { field: err.details['field'] }))
    }
    if (!isP384(endorsement)) {
      reasons.push(reason('SNP_ENDORSEMENT_MALFORMED', 'endorsement key is not ECDSA P-384', { field: 'publicKey', keyType: endorsement.publicKey.asymmetricKeyType }))
    }
    if (info !== undefined && info.kind !== signer.signingKey) {
      reasons.push(reason('SNP_ENDORSEMENT_KIND_MISMATCH', `report signed by ${signer.signingKey}, certificate is ${info.subjectCn ?? 'unnamed'}`, { signingKey: signer.signingKey, subject: info.subjectCn }))
    }
    const vcekProduct = productFromName(info?.productName)
    product ??= vcekProduct
    const chain = chooseChain(opts, table, info?.kind, product, reasons)
    const askProduct = chain !== undefined ? productFromName(commonName(chain.ask.subject)) : undefined
    product ??= askProduct
    const named = { report: cpuidProduct, vcek: vcekProduct, ask: askProduct, policy: opts.policy?.product }
    const distinct = new Set(Object.values(named).filter((p) => p !== undefined))
    if (distinct.size > 1) {
      reasons.push(reason('SNP_PRODUCT_MISMATCH', `products disagree: ${JSON.stringify(named)}`, named))
    }

    if (chain !== undefined) {
      const trusted = opts.roots?.ark ?? amdRoots()
      const arkSha = certFingerprint(chain.ark)
      if (!trusted.some((root) => certFingerprint(root) === arkSha)) {
        reasons.push(reason('SNP_ARK_NOT_TRUSTED', `ARK ${commonName(chain.ark.subject) ?? '?'} (sha256 ${arkSha}) is not a trusted root`, { sha256: arkSha, subject: commonName(chain.ark.subject) }))
      }
      if (!AMD_ARK_FINGERPRINTS.has(arkSha)) tee = 'simulated'
      if (!signedBy(chain.ark, chain.ark)) reasons.push(reason('SNP_ARK_SIGNATURE_INVALID', 'ARK is not self-signed', { subject: commonName(chain.ark.subject) }))
      if (!signedBy(chain.ask, chain.ark)) {
        reasons.push(reason('SNP_ASK_SIGNATURE_INVALID', `${commonName(chain.ask.subject) ?? 'ASK'} is not signed by ${commonName(chain.ark.subject) ?? 'ARK'}`, { ask: commonName(chain.ask.subject), ark: commonName(chain.ark.subject) }))
      }
      if (!signedBy(endorsement, chain.ask)) {
        reasons.push(reason('SNP_VCEK_SIGNATURE_INVALID', `${info?.subjectCn ?? 'endorsement key'} is not signed by ${commonName(chain.ask.subject) ?? 'ASK'}`, { vcek: info?.subjectCn, ask: commonName(chain.ask.subject) }))
      }
      for (const [role, cert] of [['ark', chain.ark], ['ask', chain.ask]] as const) {
        const r = checkValidity(role, cert, opts.at)
        if (r !== undefined) reasons.push(r)
      }
    }
    const validity = checkValidity(signer.signingKey === 'vlek' ? 'vlek' : 'vcek', endorsement, opts.at)
    if (validity !== undefined) reasons.push(validity)

    if (info !== undefined) reasons.push(...checkEndorsedTcb(info, decodeTcb(report.reportedTcb, product), product))
    if (info !== undefined && info.kind === 'vcek') {
      const chipReason = checkChipId(info, report.chipId)
      if (chipReason !== undefined) reasons.push(chipReason)
    }
    if (isP384(endorsement) && !verifySignature(report, endorsement)) {
      reasons.push(reason('SNP_REPORT_SIGNATURE_INVALID', 'report signature does not verify with the endorsement key', { vcek: certFingerprint(endorsement) }))
    }
    endorsementClaims = {
      kind: info?.kind,
      subject: info?.subjectCn,
      issuer: info?.issuerCn,
      productName: info?.productName,
      serialNumber: endorsement.serialNumber,
      notBefore: new Date(endorsement.validFrom),
      notAfter: new Date(endorsement.validTo),
      sha256: certFingerprint(endorsement),
      chain: chain !== undefined ? { ask: certFingerprint(chain.ask), ark: certFingerprint(chain.ark) } : undefined,
    }
  }

  const claims = snpClaims(report, product, endorsementClaims)
  reasons.push(...checkPolicy(claims, report, opts.policy ?? {}))
  return { tee, verified: reasons.length === 0, reasons, claims }
}

const TCB_COMPONENTS = [
  ['bootloader', 'blSpl'],
  ['tee', 'teeSpl'],
  ['snp', 'snpSpl'],
  ['microcode', 'ucodeSpl'],
] as const

function checkEndorsedTcb(info: EndorsementInfo, tcb: SnpTcb, product: SnpProduct | undefined): VerifyReason[] {
  const reasons: VerifyReason[] = []
  const pairs: [string, string, number | undefined, number | undefined][] = TCB_COMPONENTS.map(([c, ext]) => [c, ext, tcb[c], info[ext]])
  if (product === 'Turin') pairs.push(['fmc', 'fmcSpl', tcb.fmc, info.fmcSpl])
  for (const [component, ext, reported, endorsed] of pairs) {
    if (endorsed === undefined) {
      reasons.push(reason('SNP_VCEK_EXTENSION_MISSING', `endorsement key has no ${ext} extension`, { extension: ext }))
    } else if (endorsed !== reported) {
      reasons.push(reason('SNP_TCB_MISMATCH', `${component} SPL: report ${String(reported)}, endorsement key ${endorsed}`, { component, report: reported, endorsement: endorsed }))
    }
  }
  return reasons
}

function checkChipId(info: EndorsementInfo, chipId: Uint8Array): VerifyReason | undefined {
  if (info.hwId === undefined) return reason('SNP_VCEK_EXTENSION_MISSING', 'VCEK has no hwID extension', { extension: 'hwId' })
  // Turin VCEKs carry an 8-byte hwID; the rest of CHIP_ID is then zero.
  const expected = info.hwId.byteLength === 8 ? chipId.subarray(0, 8) : chipId
  const tailZero = info.hwId.byteLength !== 8 || isAllZero(chipId.subarray(8))
  if (bytesEqual(info.hwId, expected) && tailZero) return undefined
  return reason('SNP_CHIP_ID_MISMATCH', `VCEK hwID ${toHex(info.hwId)} != report CHIP_ID ${toHex(chipId)}`, { hwId: toHex(info.hwId), chipId: toHex(chipId) })
}

function snpClaims(report: SnpReport, product: SnpProduct | undefined, endorsement: SnpEndorsementClaims | undefined): SnpClaims {
  return {
    reportData: report.reportData,
    measurement: report.measurement,
    hostData: report.hostData,
    chipId: report.chipId,
    reportId: report.reportId,
    reportIdMa: report.reportIdMa,
    familyId: report.familyId,
    imageId: report.imageId,
    idKeyDigest: report.idKeyDigest,
    authorKeyDigest: report.authorKeyDigest,
    version: report.version,
    guestSvn: report.guestSvn,
    vmpl: report.vmpl,
    policy: decodePolicy(report.policy),
    platformInfo: report.platformInfo,
    signerInfo: decodeSignerInfo(report.signerInfo),
    product,
    currentTcb: decodeTcb(report.currentTcb, product),
    reportedTcb: decodeTcb(report.reportedTcb, product),
    committedTcb: decodeTcb(report.committedTcb, product),
    launchTcb: decodeTcb(report.launchTcb, product),
    currentFirmware: { major: report.currentMajor, minor: report.currentMinor, build: report.currentBuild },
    committedFirmware: { major: report.committedMajor, minor: report.committedMinor, build: report.committedBuild },
    cpuid: report.version >= 3 ? { family: report.cpuidFamId, model: report.cpuidModId, stepping: report.cpuidStep } : undefined,
    launchMitVector: report.version >= 5 ? report.launchMitVector : undefined,
    currentMitVector: report.version >= 5 ? report.currentMitVector : undefined,
    endorsement,
  }
}

function checkPolicy(claims: SnpClaims, report: SnpReport, policy: SnpPolicyOptions): VerifyReason[] {
  const reasons: VerifyReason[] = []
  if (claims.policy.debug && policy.allowDebug !== true) {
    reasons.push(reason('SNP_DEBUG_ALLOWED', 'guest policy allows debugging', { policy: `0x${report.policy.toString(16)}` }))
  }
  reasons.push(...checkGuestPolicy(claims.policy, policy.guestPolicy ?? {}))
  for (const [which, code, min, tcb] of [
    ['reported', 'SNP_TCB_BELOW_MINIMUM', policy.minimumTcb, claims.reportedTcb],
    ['launch', 'SNP_LAUNCH_TCB_BELOW_MINIMUM', policy.minimumLaunchTcb, claims.launchTcb],
  ] as const) {
    if (min === undefined) continue
    for (const component of ['bootloader', 'tee', 'snp', 'microcode', 'fmc'] as const) {
      const want = min[component]
      if (want === undefined) continue
      const have = tcb[component]
      if (have === undefined || have < want) {
        reasons.push(reason(code, `${which} ${component} SPL ${String(have)} < minimum ${want}`, { tcb: which, component, minimum: want, actual: have }))
      }
    }
  }
  const abi = policy.minimumAbi
  if (abi !== undefined) {
    for (const [which, fw] of [['current', claims.currentFirmware], ['committed', claims.committedFirmware]] as const) {
      if (fw.major < abi.major || (fw.major === abi.major && fw.minor < abi.minor)) {
        reasons.push(reason('SNP_ABI_BELOW_MINIMUM', `${which} firmware ABI ${fw.major}.${fw.minor} < minimum ${abi.major}.${abi.minor}`, { firmware: which, actual: `${fw.major}.${fw.minor}`, minimum: `${abi.major}.${abi.minor}` }))
      }
    }
  }
  if (policy.vmpl !== undefined && claims.vmpl !== policy.vmpl) {
    reasons.push(reason('SNP_VMPL_MISMATCH', `VMPL ${claims.vmpl}, expected ${policy.vmpl}`, { actual: claims.vmpl, expected: policy.vmpl }))
  }
  if (policy.measurements !== undefined && !policy.measurements.some((m) => bytesEqual(m, claims.measurement))) {
    reasons.push(reason('SNP_MEASUREMENT_NOT_ALLOWED', `measurement ${toHex(claims.measurement)} not in the allow-list`, { measurement: toHex(claims.measurement) }))
  }
  if (policy.hostData !== undefined && !policy.hostData.some((h) => bytesEqual(h, claims.hostData))) {
    reasons.push(reason('SNP_HOST_DATA_NOT_ALLOWED', `HOST_DATA ${toHex(claims.hostData)} not in the allow-list`, { hostData: toHex(claims.hostData) }))
  }
  if (policy.reportData !== undefined) {
    const r = checkReportData(claims.reportData, policy.reportData)
    if (r !== undefined) reasons.push(r)
  }
  return reasons
}

function checkGuestPolicy(p: SnpPolicy, want: SnpGuestPolicyRequirements): VerifyReason[] {
  const reasons: VerifyReason[] = []
  const policy = `0x${p.raw.toString(16)}`
  if (p.migrateMa && want.allowMigrationAgent !== true) {
    reasons.push(reason('SNP_MIGRATE_MA_ALLOWED', 'guest policy allows a migration agent (MIGRATE_MA)', { policy }))
  }
  const mismatch = (bit: string, message: string): void => {
    reasons.push(reason('SNP_GUEST_POLICY_MISMATCH', `guest policy ${message}`, { policy, bit }))
  }
  if (p.smt && want.allowSmt === false) mismatch('SMT', 'allows SMT, which is not allowed')
  if (p.cxlAllow && want.allowCxl !== true) mismatch('CXL_ALLOW', 'allows CXL-attached memory, which is not allowed')
  const required: [boolean | undefined, boolean, string][] = [
    [want.requireSingleSocket, p.singleSocket, 'SINGLE_SOCKET'],
    [want.requireMemAes256Xts, p.memAes256Xts, 'MEM_AES_256_XTS'],
    [want.requireRaplDisabled, p.raplDis, 'RAPL_DIS'],
    [want.requireCiphertextHiding, p.ciphertextHiding, 'CIPHERTEXT_HIDING_DRAM'],
    [want.requirePageSwapDisabled, p.pageSwapDisable, 'PAGE_SWAP_DISABLE'],
  ]
  for (const [req, have, bit] of required) if (req === true && !have) mismatch(bit, `lacks ${bit}, which is required`)
  const abi = want.minimumAbi
  if (abi !== undefined && (p.abiMajor < abi.major || (p.abiMajor === abi.major && p.abiMinor < abi.minor))) {
    mismatch('ABI', `demands ABI ${p.abiMajor}.${p.abiMinor}, below the minimum ${abi.major}.${abi.minor}`)
  }
  return reasons
}
