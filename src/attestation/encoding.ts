// Evidence and certificates arrive as raw bytes, hex or base64 (files, JSON,
// env). These helpers decode them strictly: a wrong character is an error,
// never silently skipped.

import { AttestationError } from './errors.js'

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
