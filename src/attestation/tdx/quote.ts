// Intel TDX quotes, versions 4 and 5 (ECDSA P-256 attestation key, QE report
// certification data). Integers are little-endian; signatures and the
// attestation key are big-endian r‖s / X‖Y.

import { ByteReader, readLayout, type FieldSpec, type LayoutFields } from '../bytes.js'
import { AttestationError, malformed } from '../errors.js'

const f = <N extends string, K extends FieldSpec['kind']>(field: N, offset: number, size: number, kind: K): FieldSpec<N, K> => ({
  field,
  offset,
  size,
  kind,
})

export const TDX_HEADER_LAYOUT = [
  f('version', 0x00, 2, 'u16'),
  f('attestationKeyType', 0x02, 2, 'u16'),
  f('teeType', 0x04, 4, 'u32'),
  f('qeSvn', 0x08, 2, 'u16'),
  f('pceSvn', 0x0a, 2, 'u16'),
  f('qeVendorId', 0x0c, 16, 'bytes'),
  f('userData', 0x1c, 20, 'bytes'),
] as const
export const TDX_HEADER_BYTES = 0x30

/** TD quote body (TDX 1.0); offsets from the body start. */
export const TDX_BODY_LAYOUT = [
  f('teeTcbSvn', 0x000, 16, 'bytes'),
  f('mrSeam', 0x010, 48, 'bytes'),
  f('mrSignerSeam', 0x040, 48, 'bytes'),
  f('seamAttributes', 0x070, 8, 'bytes'),
  f('tdAttributes', 0x078, 8, 'bytes'),
  f('xfam', 0x080, 8, 'bytes'),
  f('mrTd', 0x088, 48, 'bytes'),
  f('mrConfigId', 0x0b8, 48, 'bytes'),
  f('mrOwner', 0x0e8, 48, 'bytes'),
  f('mrOwnerConfig', 0x118, 48, 'bytes'),
  f('rtmr0', 0x148, 48, 'bytes'),
  f('rtmr1', 0x178, 48, 'bytes'),
  f('rtmr2', 0x1a8, 48, 'bytes'),
  f('rtmr3', 0x1d8, 48, 'bytes'),
  f('reportData', 0x208, 64, 'bytes'),
] as const
export const TDX10_BODY_BYTES = 0x248

/** What TDX 1.5 (v5 body type 3) appends to the 1.0 body. */
export const TDX15_BODY_EXTRA_LAYOUT = [f('teeTcbSvn2', 0x248, 16, 'bytes'), f('mrServiceTd', 0x258, 48, 'bytes')] as const
export const TDX15_BODY_BYTES = 0x288

/** The SGX report body of the quoting enclave (384 bytes). */
export const QE_REPORT_LAYOUT = [
  f('cpuSvn', 0x000, 16, 'bytes'),
  f('miscSelect', 0x010, 4, 'u32'),
  f('attributes', 0x030, 16, 'bytes'),
  f('mrEnclave', 0x040, 32, 'bytes'),
  f('mrSigner', 0x080, 32, 'bytes'),
  f('isvProdId', 0x100, 2, 'u16'),
  f('isvSvn', 0x102, 2, 'u16'),
  f('reportData', 0x140, 64, 'bytes'),
] as const
export const QE_REPORT_BYTES = 384

export const TDX_ATTESTATION_KEY_ECDSA_P256 = 2
export const TDX_TEE_TYPE = 0x81
export const CERT_DATA_QE_REPORT = 6
export const CERT_DATA_PCK_CHAIN = 5
/** Bodies are small; a length beyond this is corrupt, not a reason to allocate. */
const MAX_CERT_DATA_BYTES = 1 << 20

export type TdxHeader = LayoutFields<typeof TDX_HEADER_LAYOUT>
export type TdxBody = LayoutFields<typeof TDX_BODY_LAYOUT> & Partial<LayoutFields<typeof TDX15_BODY_EXTRA_LAYOUT>>
export type QeReport = LayoutFields<typeof QE_REPORT_LAYOUT>

export interface TdxQuote {
  readonly header: TdxHeader
  /** 2 = TDX 1.0 body, 3 = TDX 1.5 body (v4 quotes always 2). */
  readonly bodyType: number
  readonly body: TdxBody
  /** header ‖ (v5 body descriptor) ‖ body: what the attestation key signed. */
  readonly signedBytes: Uint8Array
  readonly signedDataLength: number
  /** r‖s, 64 bytes big-endian. */
  readonly signature: Uint8Array
  /** X‖Y, 64 bytes big-endian, no 0x04 prefix. */
  readonly attestationKey: Uint8Array
  readonly certDataType: number
  readonly qeReportBytes: Uint8Array
  readonly qeReport: QeReport
  readonly qeReportSignature: Uint8Array
  readonly qeAuthData: Uint8Array
  readonly pckCertDataType: number
  readonly pckCertData: Uint8Array
  /** Bytes after the signed data; not covered by any signature. */
  readonly trailingBytes: number
}

export function parseTdxQuote(bytes: Uint8Array): TdxQuote {
  const r = new ByteReader(bytes)
  const version = r.u16('version')
  if (version !== 4 && version !== 5) {
    throw new AttestationError('ATTESTATION_UNSUPPORTED_VERSION', `TDX quote version ${version}, expected 4 or 5`, { tee: 'tdx', field: 'version', version })
  }
  r.seek(0, 'header')
  const header = readLayout(r.sub(TDX_HEADER_BYTES, 'header'), TDX_HEADER_LAYOUT)

  let bodyType = 2
  let bodySize = TDX10_BODY_BYTES
  if (version === 5) {
    bodyType = r.u16('bodyType')
    bodySize = r.u32('bodySize')
    const expected = bodyType === 2 ? TDX10_BODY_BYTES : bodyType === 3 ? TDX15_BODY_BYTES : undefined
    if (expected === undefined) {
      throw new AttestationError('ATTESTATION_UNSUPPORTED_VERSION', `TDX v5 body type ${bodyType}, expected 2 (TDX 1.0) or 3 (TDX 1.5)`, { tee: 'tdx', field: 'bodyType', bodyType })
    }
    if (bodySize !== expected) throw malformed('bodySize', `${bodySize} B for body type ${bodyType}, expected ${expected}`, { bodySize, bodyType })
  }
  const bodyReader = r.sub(bodySize, 'body')
  const body: TdxBody = { ...readLayout(bodyReader, TDX_BODY_LAYOUT), ...(bodyType === 3 ? readLayout(bodyReader, TDX15_BODY_EXTRA_LAYOUT) : {}) }
  const signedBytes = Uint8Array.from(bytes.subarray(0, r.pos))

  const signedDataLength = r.u32('signedDataLength')
  const sd = r.sub(signedDataLength, 'signedData')
  const signature = sd.bytesCopy(64, 'signature')
  const attestationKey = sd.bytesCopy(64, 'attestationKey')
  const certDataType = sd.u16('certDataType')
  if (certDataType !== CERT_DATA_QE_REPORT) {
    throw malformed('certDataType', `certification data type ${certDataType}, expected ${CERT_DATA_QE_REPORT} (QE report)`, { certDataType })
  }
  const certDataSize = sd.u32('certDataSize')
  if (certDataSize > MAX_CERT_DATA_BYTES) throw malformed('certDataSize', `${certDataSize} B exceeds ${MAX_CERT_DATA_BYTES} B`, { certDataSize })
  const cd = sd.sub(certDataSize, 'certData')
  const qeReportReader = cd.sub(QE_REPORT_BYTES, 'qeReport')
  const qeReportBytes = Uint8Array.from(qeReportReader.bytes)
  const qeReport = readLayout(qeReportReader, QE_REPORT_LAYOUT)
  const qeReportSignature = cd.bytesCopy(64, 'qeReportSignature')
  const authSize = cd.u16('qeAuthDataSize')
  const qeAuthData = cd.bytesCopy(authSize, 'qeAuthData')
  const pckCertDataType = cd.u16('pckCertDataType')
  const pckSize = cd.u32('pckCertDataSize')
  const pckCertData = cd.bytesCopy(pckSize, 'pckCertData')
  if (cd.remaining !== 0) throw malformed('certData', `${cd.remaining} B after the PCK certification data`, { extra: cd.remaining })
  if (sd.remaining !== 0) throw malformed('signedData', `${sd.remaining} B after the certification data`, { extra: sd.remaining })

  return {
    header,
    bodyType,
    body,
    signedBytes,
    signedDataLength,
    signature,
    attestationKey,
    certDataType,
    qeReportBytes,
    qeReport,
    qeReportSignature,
    qeAuthData,
    pckCertDataType,
    pckCertData,
    trailingBytes: r.remaining,
  }
}
