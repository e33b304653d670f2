// The certificate table of an extended SEV-SNP report (configfs-tsm auxblob,
// SNP_GET_EXT_REPORT certs buffer): 24-byte entries GUID ‖ offset u32 ‖ length
// u32, offsets from the table start, ended by an all-zero entry.

import type { X509Certificate } from 'node:crypto'
import { ByteReader } from '../bytes.js'
import { isAllZero, parseCertificates, toHex } from '../encoding.js'
import { malformed } from '../errors.js'

// GUID bytes are in string order (not mixed-endian), as the firmware writes them.
export const CERT_TABLE_GUID = {
  vcek: '63da758de6644564adc5f4b93be8accd',
  vlek: 'a8074bc2a25a483eaae639c045a0b8a1',
  ask: '4ab7b379bbac4fe4a02f05aef327c782',
  ark: 'c0b406a4a803495297433fb6014cd0ae',
} as const

export type CertTableRole = keyof typeof CERT_TABLE_GUID

export interface SnpCertTable {
  readonly vcek?: X509Certificate
  readonly vlek?: X509Certificate
  readonly ask?: X509Certificate
  readonly ark?: X509Certificate
  /** Every entry, including GUIDs we do not interpret. */
  readonly entries: readonly { guid: string; offset: number; length: number }[]
}

const ENTRY_BYTES = 24
const MAX_ENTRIES = 64

export function parseSnpCertTable(table: Uint8Array): SnpCertTable {
  const r = new ByteReader(table)
  const entries: { guid: string; offset: number; length: number }[] = []
  const certs: Partial<Record<CertTableRole, X509Certificate>> = {}
  for (let i = 0; ; i++) {
    if (i >= MAX_ENTRIES) throw malformed('certTable', `more than ${MAX_ENTRIES} entries without a terminator`)
    const field = `certTable[${i}]`
    const guidBytes = r.bytesView(16, `${field}.guid`)
    const offset = r.u32(`${field}.offset`)
    const length = r.u32(`${field}.length`)
    if (isAllZero(guidBytes) && offset === 0 && length === 0) break
    const guid = toHex(guidBytes)
    entries.push({ guid, offset, length })
    const body = new ByteReader(table)
    if (offset > table.byteLength) throw malformed(`${field}.offset`, `offset ${offset} beyond table of ${table.byteLength} B`, { offset, length })
    body.seek(offset, `${field}.offset`)
    const der = body.bytesView(length, `${field}.certificate`)
    const role = (Object.keys(CERT_TABLE_GUID) as CertTableRole[]).find((k) => CERT_TABLE_GUID[k] === guid)
    if (role !== undefined) certs[role] = parseCertificates(Uint8Array.from(der), `certTable.${role}`)[0]
  }
  return { ...certs, entries }
}

/**
 * Whether `bytes` are shaped like a certificate table: whole 24-byte entries ended by an
 * all-zero one, each naming a non-empty range after that terminator and inside `bytes`.
 * Evidence files carry other trailers (Azure appends a runtime-data header to the
 * report); those are not tables and must not be read as one.
 */
export function isSnpCertTable(bytes: Uint8Array): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const ranges: [number, number][] = []
  for (let i = 0; i < MAX_ENTRIES; i++) {
    const at = i * ENTRY_BYTES
    if (at + ENTRY_BYTES > bytes.byteLength) return false
    const offset = view.getUint32(at + 16, true)
    const length = view.getUint32(at + 20, true)
    if (isAllZero(bytes.subarray(at, at + 16)) && offset === 0 && length === 0) {
      const end = at + ENTRY_BYTES
      return ranges.every(([o, l]) => l > 0 && o >= end && o + l <= bytes.byteLength)
    }
    ranges.push([offset, length])
  }
  return false
}

/** Builds a table (for tests and the simulated provider): entries in the given order. */
export function buildSnpCertTable(certs: Partial<Record<CertTableRole, Uint8Array>>): Uint8Array {
  const roles = (Object.keys(certs) as CertTableRole[]).filter((k) => certs[k] !== undefined)
  const header = (roles.length + 1) * ENTRY_BYTES
  const total = header + roles.reduce((n, k) => n + certs[k]!.byteLength, 0)
  const out = new Uint8Array(total)
  const view = new DataView(out.buffer)
  let at = header
  roles.forEach((role, i) => {
    const der = certs[role]!
    out.set(Buffer.from(CERT_TABLE_GUID[role], 'hex'), i * ENTRY_BYTES)
    view.setUint32(i * ENTRY_BYTES + 16, at, true)
    view.setUint32(i * ENTRY_BYTES + 20, der.byteLength, true)
    out.set(der, at)
    at += der.byteLength
  })
  return out
}
