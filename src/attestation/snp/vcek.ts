// The VCEK/VLEK certificate's AMD extensions (arc 1.3.6.1.4.1.3704.1): what TCB
// and which chip the key was derived for. Read with our DER reader because
// node:crypto does not expose extensions.

import type { X509Certificate } from 'node:crypto'
import { certificateExtensions, commonName, derInteger, derString } from '../encoding.js'
import { isMeshError } from '../../errors.js'
import { malformed } from '../errors.js'

export const AMD_OID = {
  structVersion: '1.3.6.1.4.1.3704.1.1',
  productName: '1.3.6.1.4.1.3704.1.2',
  blSpl: '1.3.6.1.4.1.3704.1.3.1',
  teeSpl: '1.3.6.1.4.1.3704.1.3.2',
  snpSpl: '1.3.6.1.4.1.3704.1.3.3',
  ucodeSpl: '1.3.6.1.4.1.3704.1.3.8',
  fmcSpl: '1.3.6.1.4.1.3704.1.3.9',
  hwId: '1.3.6.1.4.1.3704.1.4',
  cspId: '1.3.6.1.4.1.3704.1.5',
} as const

export type EndorsementKind = 'vcek' | 'vlek'

export interface EndorsementInfo {
  readonly kind: EndorsementKind | undefined
  readonly subjectCn: string | undefined
  readonly issuerCn: string | undefined
  readonly productName: string | undefined
  readonly blSpl: number | undefined
  readonly teeSpl: number | undefined
  readonly snpSpl: number | undefined
  readonly ucodeSpl: number | undefined
  readonly fmcSpl: number | undefined
  /** 64 bytes (Milan, Genoa) or 8 (Turin); absent on a VLEK. */
  readonly hwId: Uint8Array | undefined
  readonly cspId: string | undefined
}

/**
 * hwID is raw bytes in the KDS certificates seen so far; newer ones may wrap it
 * in an OCTET STRING. A raw 64/8-byte value never reads as a wrapper of 64/8.
 */
function hwIdBytes(value: Uint8Array): Uint8Array {
  const inner = value[1]
  if (value[0] === 0x04 && (inner === 64 || inner === 8) && value.byteLength === inner + 2) return value.slice(2)
  return value
}

/** Reads the AMD extensions; throws ATTESTATION_MALFORMED with `details.field` naming the bad one. */
export function readEndorsement(cert: X509Certificate): EndorsementInfo {
  let exts
  try {
    exts = certificateExtensions(new Uint8Array(cert.raw))
  } catch (err) {
    if (!isMeshError(err)) throw err
    throw malformed('extensions', err.message, { cause: err.code })
  }
  const int = (oid: string, field: string): number | undefined => {
    const e = exts.get(oid)
    if (e === undefined) return undefined
    return derInteger(e.value, field)
  }
  const str = (oid: string, field: string): string | undefined => {
    const e = exts.get(oid)
    if (e === undefined) return undefined
    return derString(e.value, field)
  }
  const subjectCn = commonName(cert.subject)
  const hw = exts.get(AMD_OID.hwId)
  return {
    kind: subjectCn === 'SEV-VCEK' ? 'vcek' : subjectCn === 'SEV-VLEK' ? 'vlek' : undefined,
    subjectCn,
    issuerCn: commonName(cert.issuer),
    productName: str(AMD_OID.productName, 'productName'),
    blSpl: int(AMD_OID.blSpl, 'blSPL'),
    teeSpl: int(AMD_OID.teeSpl, 'teeSPL'),
    snpSpl: int(AMD_OID.snpSpl, 'snpSPL'),
    ucodeSpl: int(AMD_OID.ucodeSpl, 'ucodeSPL'),
    fmcSpl: int(AMD_OID.fmcSpl, 'fmcSPL'),
    hwId: hw === undefined ? undefined : hwIdBytes(hw.value),
    cspId: str(AMD_OID.cspId, 'cspId'),
  }
}
