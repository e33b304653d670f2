// Evidence and certificates arrive as raw bytes, hex or base64 (files, JSON,
// env). These helpers decode them strictly: a wrong character is an error,
// never silently skipped.

import { createHash, X509Certificate } from 'node:crypto'
import { ByteReader } from './bytes.js'
import { AttestationError, malformed } from './errors.js'

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export function fromHex(text: string, field = 'hex'): Uint8Array {
  const t = text.trim().replace(/^0x/i, '')
  if (t.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(t)) {
    throw new AttestationError('ATTESTATION_BAD_INPUT', `${field}: not an even-length hex string`, {
      field,
      length: t.length,
    })
  }
  return Uint8Array.from(Buffer.from(t, 'hex'))
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  let diff = 0
  for (let i = 0; i < a.byteLength; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

export function isAllZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false
  return true
}

export type InputEncoding = 'binary' | 'hex' | 'base64' | 'pem'

const HEX_TEXT = /^[0-9a-fA-F]+$/
const BASE64_TEXT = /^[A-Za-z0-9+/]+={0,2}$/
const BASE64URL_TEXT = /^[A-Za-z0-9_-]+$/

/**
 * Detects how a file holds binary evidence. Text that is entirely hex digits is
 * hex (checked first: every hex string is also valid base64 alphabet); then
 * base64; anything else, including PEM, is returned as is. Binary evidence
 * always contains bytes outside these alphabets (zero padding), so it cannot
 * be mistaken for text.
 */
export function decodeEvidenceFile(data: Uint8Array): { bytes: Uint8Array; encoding: InputEncoding } {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1')
  if (text.includes('-----BEGIN ')) return { bytes: data, encoding: 'pem' }
  const compact = text.replace(/\s+/g, '')
  if (compact.length > 0 && compact.length % 2 === 0 && HEX_TEXT.test(compact)) {
    return { bytes: Uint8Array.from(Buffer.from(compact, 'hex')), encoding: 'hex' }
  }
  if (compact.length > 0 && (BASE64_TEXT.test(compact) || BASE64URL_TEXT.test(compact))) {
    const bytes = Uint8Array.from(Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64'))
    if (bytes.byteLength > 0) return { bytes, encoding: 'base64' }
  }
  return { bytes: data, encoding: 'binary' }
}

// ---- DER, just enough to read certificate extensions --------------------------------
// node:crypto's X509Certificate verifies signatures and reads names and dates but
// does not expose extensions; AMD's VCEK TCB values and Intel's FMSPC live there.

export interface DerNode {
  readonly tag: number
  /** Absolute offset of the tag byte. */
  readonly offset: number
  readonly value: ByteReader
}

const MAX_DER_LENGTH_OCTETS = 4

export function readDer(r: ByteReader, field: string): DerNode {
  const offset = r.offset
  const tag = r.u8(`${field}.tag`)
  if ((tag & 0x1f) === 0x1f) throw malformed(field, 'multi-byte DER tags are not used here', { offset, tag })
  let length = r.u8(`${field}.length`)
  if (length & 0x80) {
    const n = length & 0x7f
    if (n === 0 || n > MAX_DER_LENGTH_OCTETS) throw malformed(field, `unsupported DER length form 0x${length.toString(16)}`, { offset })
    length = 0
    for (let i = 0; i < n; i++) length = length * 256 + r.u8(`${field}.length`)
  }
  return { tag, offset, value: r.sub(length, field) }
}

export function derChildren(node: DerNode, field: string): DerNode[] {
  const out: DerNode[] = []
  const r = new ByteReader(node.value.bytes, node.value.base)
  while (r.remaining > 0) out.push(readDer(r, `${field}[${out.length}]`))
  return out
}

export function decodeOid(bytes: Uint8Array): string {
  if (bytes.byteLength === 0) return ''
  const first = bytes[0]!
  const parts: number[] = [Math.min(2, Math.floor(first / 40)), first - Math.min(2, Math.floor(first / 40)) * 40]
  let acc = 0
  for (let i = 1; i < bytes.byteLength; i++) {
    const b = bytes[i]!
    acc = acc * 128 + (b & 0x7f)
    if ((b & 0x80) === 0) {
      parts.push(acc)
      acc = 0
    }
  }
  return parts.join('.')
}

/** A non-negative DER INTEGER from a whole TLV (tag 0x02) up to 2^53. */
export function derInteger(tlv: Uint8Array, field: string): number {
  const node = readDer(new ByteReader(tlv), field)
  if (node.tag !== 0x02) throw malformed(field, `expected INTEGER, got tag 0x${node.tag.toString(16)}`)
  const v = node.value.bytes
  if (v.byteLength === 0 || v.byteLength > 7 || (v[0]! & 0x80) !== 0) throw malformed(field, 'INTEGER out of range', { length: v.byteLength })
  let n = 0
  for (const b of v) n = n * 256 + b
  return n
}

/** A DER string (IA5String, UTF8String, PrintableString) from a whole TLV. */
export function derString(tlv: Uint8Array, field: string): string {
  const node = readDer(new ByteReader(tlv), field)
  if (node.tag !== 0x16 && node.tag !== 0x0c && node.tag !== 0x13) throw malformed(field, `expected a string, got tag 0x${node.tag.toString(16)}`)
  return Buffer.from(node.value.bytes).toString('utf8')
}

export interface CertExtension {
  readonly critical: boolean
  /** The extnValue OCTET STRING contents. */
  readonly value: Uint8Array
}

/** Extensions of a DER certificate by OID. Throws AttestationError on malformed DER. */
export function certificateExtensions(der: Uint8Array): Map<string, CertExtension> {
  const out = new Map<string, CertExtension>()
  const cert = readDer(new ByteReader(der), 'certificate')
  const [tbs] = derChildren(cert, 'certificate')
  if (tbs === undefined) throw malformed('certificate', 'empty certificate')
  const exts = derChildren(tbs, 'tbsCertificate').find((n) => n.tag === 0xa3)
  if (exts === undefined) return out
  const [seq] = derChildren(exts, 'extensions')
  if (seq === undefined) return out
  for (const ext of derChildren(seq, 'extensions')) {
    const parts = derChildren(ext, 'extension')
    const oid = parts[0]
    const value = parts[parts.length - 1]
    if (oid?.tag !== 0x06 || value?.tag !== 0x04 || parts.length < 2) throw malformed('extension', 'not OID [BOOLEAN] OCTET STRING')
    const critical = parts.length === 3 && parts[1]?.tag === 0x01 && parts[1].value.bytes[0] !== 0
    out.set(decodeOid(oid.value.bytes), { critical, value: Uint8Array.from(value.value.bytes) })
  }
  return out
}

// ---- certificates ---------------------------------------------------------------------

export type CertInput = X509Certificate | Uint8Array | string

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/**
 * Certificates from X509Certificate objects, PEM (one or many, any trailing
 * NUL), DER, or hex/base64 of DER. Order is kept.
 */
export function parseCertificates(input: CertInput | readonly CertInput[], field = 'certificate'): X509Certificate[] {
  if (Array.isArray(input)) return input.flatMap((c: CertInput, i) => parseCertificates(c, `${field}[${i}]`))
  const one = input as CertInput
  if (one instanceof X509Certificate) return [one]
  const bytes = typeof one === 'string' ? Uint8Array.from(Buffer.from(one, 'latin1')) : one
  const decoded = decodeEvidenceFile(bytes)
  try {
    if (decoded.encoding === 'pem') {
      const text = Buffer.from(bytes).toString('latin1')
      const blocks = text.match(PEM_BLOCK) ?? []
      if (blocks.length === 0) throw new Error('no PEM CERTIFICATE block')
      return blocks.map((b) => new X509Certificate(b))
    }
    return [new X509Certificate(Buffer.from(decoded.bytes))]
  } catch (err) {
    throw new AttestationError('ATTESTATION_BAD_INPUT', `${field}: not an X.509 certificate (${(err as Error).message})`, { field }, { cause: err })
  }
}

/** SHA-256 of the certificate's DER, lowercase hex. */
export function certFingerprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('hex')
}

/** The CN of an X509Certificate subject/issuer string. */
export function commonName(name: string): string | undefined {
  for (const line of name.split('\n')) if (line.startsWith('CN=')) return line.slice(3)
  return undefined
}
