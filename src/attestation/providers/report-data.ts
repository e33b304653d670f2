// Where REPORT_DATA sits in a raw blob, so a provider can refuse evidence that
// answers someone else's request before a verifier ever sees it.

import { bytesEqual } from '../encoding.js'
import { REPORT_DATA_BYTES } from '../provider.js'

export const SNP_REPORT_BYTES = 0x4a0
const SNP_REPORT_DATA_OFFSET = 0x50
/** TDX quote v4: header 0x30 + body report_data 0x208; v5: body at 0x36. */
const TDX_REPORT_DATA_OFFSET = { 4: 0x30 + 0x208, 5: 0x36 + 0x208 } as const

export type BlobCheck =
  | { readonly ok: true; readonly offset: number }
  | { readonly ok: false; readonly problem: 'size' | 'version' | 'mismatch'; readonly offset?: number; readonly length: number; readonly version?: number }

export function checkBlobReportData(tee: 'snp' | 'tdx', blob: Uint8Array, reportData: Uint8Array): BlobCheck {
  let offset: number
  if (tee === 'snp') {
    if (blob.byteLength !== SNP_REPORT_BYTES) return { ok: false, problem: 'size', length: blob.byteLength }
    offset = SNP_REPORT_DATA_OFFSET
  } else {
    const version = blob.byteLength >= 2 ? blob[0]! | (blob[1]! << 8) : undefined
    const at = version === 4 || version === 5 ? TDX_REPORT_DATA_OFFSET[version] : undefined
    if (at === undefined) return { ok: false, problem: 'version', length: blob.byteLength, version }
    if (blob.byteLength < at + REPORT_DATA_BYTES) return { ok: false, problem: 'size', length: blob.byteLength, version }
    offset = at
  }
  if (!bytesEqual(blob.subarray(offset, offset + REPORT_DATA_BYTES), reportData)) {
    return { ok: false, problem: 'mismatch', offset, length: blob.byteLength }
  }
  return { ok: true, offset }
}
