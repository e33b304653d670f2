// SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP firmware ABI, Table 22): one layout
// for versions 2-5, 0x4A0 bytes, little-endian. Parsing reads fields only;
// what they must contain is checked in verify.ts so a bad value becomes a
// reason in the result rather than a thrown error.

import { ByteReader, readLayout, type FieldSpec, type LayoutFields } from '../bytes.js'
import { AttestationError, malformed } from '../errors.js'

export const SNP_REPORT_BYTES = 0x4a0
export const SNP_SIGNED_BYTES = 0x2a0
export const SNP_MIN_VERSION = 2
export const SNP_MAX_VERSION = 5

const f = <N extends string, K extends FieldSpec['kind']>(field: N, offset: number, size: number, kind: K): FieldSpec<N, K> => ({
  field,
  offset,
  size,
  kind,
})

/** The report layout, in offset order; every byte of the report belongs to exactly one row. */
export const SNP_REPORT_LAYOUT = [
  f('version', 0x000, 4, 'u32'),
  f('guestSvn', 0x004, 4, 'u32'),
  f('policy', 0x008, 8, 'u64'),
  f('familyId', 0x010, 16, 'bytes'),
  f('imageId', 0x020, 16, 'bytes'),
  f('vmpl', 0x030, 4, 'u32'),
  f('signatureAlgo', 0x034, 4, 'u32'),
  f('currentTcb', 0x038, 8, 'u64'),
  f('platformInfo', 0x040, 8, 'u64'),
  f('signerInfo', 0x048, 4, 'u32'),
  f('reserved04c', 0x04c, 4, 'bytes'),
  f('reportData', 0x050, 64, 'bytes'),
  f('measurement', 0x090, 48, 'bytes'),
  f('hostData', 0x0c0, 32, 'bytes'),
  f('idKeyDigest', 0x0e0, 48, 'bytes'),
  f('authorKeyDigest', 0x110, 48, 'bytes'),
  f('reportId', 0x140, 32, 'bytes'),
  f('reportIdMa', 0x160, 32, 'bytes'),
  f('reportedTcb', 0x180, 8, 'u64'),
  f('cpuidFamId', 0x188, 1, 'u8'),
  f('cpuidModId', 0x189, 1, 'u8'),
  f('cpuidStep', 0x18a, 1, 'u8'),
  f('reserved18b', 0x18b, 0x15, 'bytes'),
  f('chipId', 0x1a0, 64, 'bytes'),
  f('committedTcb', 0x1e0, 8, 'u64'),
  f('currentBuild', 0x1e8, 1, 'u8'),
  f('currentMinor', 0x1e9, 1, 'u8'),
  f('currentMajor', 0x1ea, 1, 'u8'),
  f('reserved1eb', 0x1eb, 1, 'bytes'),
  f('committedBuild', 0x1ec, 1, 'u8'),
  f('committedMinor', 0x1ed, 1, 'u8'),
  f('committedMajor', 0x1ee, 1, 'u8'),
  f('reserved1ef', 0x1ef, 1, 'bytes'),
  f('launchTcb', 0x1f0, 8, 'u64'),
  f('launchMitVector', 0x1f8, 8, 'u64'),
  f('currentMitVector', 0x200, 8, 'u64'),
  f('reserved208', 0x208, 0x98, 'bytes'),
  f('signature', 0x2a0, 0x200, 'bytes'),
] as const

export type SnpReportFields = LayoutFields<typeof SNP_REPORT_LAYOUT>

export interface SnpReport extends SnpReportFields {
  /** report[0:0x2A0), the bytes the signature covers (a copy). */
  readonly signedBytes: Uint8Array
  /** The 512-byte signature split as the firmware lays it out: R and S are 72-byte little-endian. */
  readonly signatureR: Uint8Array
  readonly signatureS: Uint8Array
}

/**
 * Parses a bare SEV-SNP report (configfs-tsm outblob). Throws ParseError when
 * truncated, AttestationError for trailing bytes or a version outside 2-5.
 */
export function parseSnpReport(bytes: Uint8Array): SnpReport {
  const r = new ByteReader(bytes)
  const version = r.u32('version')
  if (version < SNP_MIN_VERSION || version > SNP_MAX_VERSION) {
    throw new AttestationError('ATTESTATION_UNSUPPORTED_VERSION', `SEV-SNP report version ${version} not in ${SNP_MIN_VERSION}-${SNP_MAX_VERSION}`, {
      tee: 'snp',
      field: 'version',
      version,
    })
  }
  r.seek(0, 'report')
  const fields = readLayout(r, SNP_REPORT_LAYOUT)
  if (bytes.byteLength !== SNP_REPORT_BYTES) {
    throw malformed('report', `${bytes.byteLength} B, a report is exactly ${SNP_REPORT_BYTES} B`, { length: bytes.byteLength })
  }
  return {
    ...fields,
    signedBytes: Uint8Array.from(bytes.subarray(0, SNP_SIGNED_BYTES)),
    signatureR: fields.signature.subarray(0, 0x48),
    signatureS: fields.signature.subarray(0x48, 0x90),
  }
}

// ---- decoded fields ------------------------------------------------------------------

export type SnpProduct = 'Milan' | 'Genoa' | 'Turin'
export const SNP_PRODUCTS: readonly SnpProduct[] = ['Milan', 'Genoa', 'Turin']

/** A TCB_VERSION split into its security patch levels; `fmc` exists on Turin only. */
export interface SnpTcb {
  readonly raw: bigint
  readonly fmc?: number
  readonly bootloader: number
  readonly tee: number
  readonly snp: number
  readonly microcode: number
}

export function decodeTcb(raw: bigint, product: SnpProduct | undefined): SnpTcb {
  const byte = (i: number): number => Number((raw >> BigInt(8 * i)) & 0xffn)
  if (product === 'Turin') {
    return { raw, fmc: byte(0), bootloader: byte(1), tee: byte(2), snp: byte(3), microcode: byte(7) }
  }
  return { raw, bootloader: byte(0), tee: byte(1), snp: byte(6), microcode: byte(7) }
}

export interface SnpPolicy {
  readonly raw: bigint
  readonly abiMinor: number
  readonly abiMajor: number
  readonly smt: boolean
  readonly migrateMa: boolean
  readonly debug: boolean
  readonly singleSocket: boolean
  readonly cxlAllow: boolean
  readonly memAes256Xts: boolean
  readonly raplDis: boolean
  readonly ciphertextHiding: boolean
  readonly pageSwapDisable: boolean
}

export const POLICY_RESERVED_ONE_BIT = 17n
/** Bits 63:26 must be zero. */
export const POLICY_MBZ_MASK = ~((1n << 26n) - 1n) & 0xffff_ffff_ffff_ffffn

export function decodePolicy(raw: bigint): SnpPolicy {
  const bit = (n: bigint): boolean => ((raw >> n) & 1n) === 1n
  return {
    raw,
    abiMinor: Number(raw & 0xffn),
    abiMajor: Number((raw >> 8n) & 0xffn),
    smt: bit(16n),
    migrateMa: bit(18n),
    debug: bit(19n),
    singleSocket: bit(20n),
    cxlAllow: bit(21n),
    memAes256Xts: bit(22n),
    raplDis: bit(23n),
    ciphertextHiding: bit(24n),
    pageSwapDisable: bit(25n),
  }
}

export type SnpSigningKey = 'vcek' | 'vlek' | 'none' | 'reserved'

export interface SnpSignerInfo {
  readonly raw: number
  readonly authorKeyEn: boolean
  readonly maskChipKey: boolean
  readonly signingKey: SnpSigningKey
}

export const SIGNER_INFO_MBZ_MASK = ~0x1f >>> 0

export function decodeSignerInfo(raw: number): SnpSignerInfo {
  const key = (raw >> 2) & 0x7
  return {
    raw,
    authorKeyEn: (raw & 1) === 1,
    maskChipKey: (raw & 2) === 2,
    signingKey: key === 0 ? 'vcek' : key === 1 ? 'vlek' : key === 7 ? 'none' : 'reserved',
  }
}

/** The product named by the report's CPUID bytes (version 3 and later); v2 carries none. */
export function productFromCpuid(report: Pick<SnpReport, 'version' | 'cpuidFamId' | 'cpuidModId'>): SnpProduct | undefined {
  if (report.version < 3) return undefined
  const { cpuidFamId: fam, cpuidModId: mod } = report
  if (fam === 0x19 && mod < 0x10) return 'Milan'
  if (fam === 0x19 && mod >= 0x10 && mod < 0x20) return 'Genoa'
  if (fam === 0x1a && mod < 0x20) return 'Turin'
  return undefined
}

/** "Milan-B0" (VCEK productName), "SEV-Milan" (ASK CN), "SEV-VLEK-Genoa" (ASVK CN) → product. */
export function productFromName(name: string | undefined): SnpProduct | undefined {
  if (name === undefined) return undefined
  const stem = name.replace(/^SEV-(VLEK-)?/, '').replace(/^ARK-/, '').split('-')[0]
  return SNP_PRODUCTS.find((p) => p === stem)
}
