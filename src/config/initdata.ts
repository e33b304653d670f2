// Kata initdata: the measured document a pod VM is started with. Three encodings of
// one TOML text — the text itself, the pod annotation (base64 of gzip) and the guest
// block device (`initdata` ‖ u64 LE length ‖ gzip) — and its digest, which the TEE
// reports as SNP HOST_DATA (32 bytes) or TDX MRCONFIGID (48 bytes). The digest is over
// the exact TOML bytes, so a document is kept as the bytes it arrived as, never
// re-serialized.

import { createHash, timingSafeEqual } from 'node:crypto'
import { gunzipSync, gzipSync } from 'node:zlib'
import { parse as parseToml, TomlError } from 'smol-toml'
import { entryText } from './file-schema.js'
import { InitdataError } from './initdata-errors.js'

export const INITDATA_VERSION = '0.1.0'
export const INITDATA_ANNOTATION = 'io.katacontainers.config.hypervisor.cc_init_data'
export const INITDATA_MAGIC = 'initdata'
/** Magic (8) + u64 LE length (8). */
export const INITDATA_HEADER_BYTES = 16
/**
 * Bounds for what a host hands us. A genpolicy policy is a few hundred KiB of text; the
 * caps leave ample room while keeping a hostile length from making us allocate GiBs.
 */
export const MAX_INITDATA_COMPRESSED_BYTES = 4 * 1024 * 1024
export const MAX_INITDATA_TOML_BYTES = 16 * 1024 * 1024

export type InitdataAlgorithm = 'sha256' | 'sha384' | 'sha512'
export const INITDATA_ALGORITHMS: readonly InitdataAlgorithm[] = ['sha256', 'sha384', 'sha512']

/** The TEE field the digest is reported in, and its size in bytes. */
export type DigestField = 'snp-host-data' | 'tdx-mrconfigid'
export const DIGEST_FIELD_BYTES: Readonly<Record<DigestField, number>> = { 'snp-host-data': 32, 'tdx-mrconfigid': 48 }

export interface InitdataDocument {
  readonly version: string
  readonly algorithm: InitdataAlgorithm
  /** `[data]`: file name → content (Kata keys `policy.rego`, `aa.toml`, `cdh.toml`; ours `podvm-mesh.toml`). */
  readonly data: Readonly<Record<string, string>>
  /** The exact document bytes; the digest is over these. */
  readonly bytes: Uint8Array
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function algorithmOf(value: unknown): InitdataAlgorithm | undefined {
  if (typeof value !== 'string') return undefined
  // Contrast normalises the `sha-256` spelling; accept it the same way.
  const v = value.toLowerCase().replace(/^sha-/, 'sha')
  return (INITDATA_ALGORITHMS as readonly string[]).includes(v) ? (v as InitdataAlgorithm) : undefined
}

/** `value` is what the host wrote: shown bounded (entryText), whatever its shape. */
function badField(field: string, message: string, value?: unknown): InitdataError {
  return new InitdataError('INITDATA_BAD_FIELD', message, value === undefined ? { field } : { field, value: entryText(value) })
}

/**
 * The TOML document (text or its exact bytes). Unknown top-level keys are ignored, as
 * Kata's and Contrast's readers ignore them; they are still covered by the digest.
 */
export function parseInitdataToml(input: string | Uint8Array): InitdataDocument {
  const bytes = typeof input === 'string' ? new TextEncoder().encode(input) : input
  if (bytes.length > MAX_INITDATA_TOML_BYTES) {
    throw new InitdataError('INITDATA_TOO_LARGE', `initdata document ${bytes.length} B > ${MAX_INITDATA_TOML_BYTES} B`, {
      size: bytes.length,
      max: MAX_INITDATA_TOML_BYTES,
    })
  }
  let text: string
  try {
    text = typeof input === 'string' ? input : utf8.decode(bytes)
  } catch (err) {
    throw new InitdataError('INITDATA_BAD_TOML', 'initdata document is not valid UTF-8', {}, { cause: err })
  }
  let doc: Record<string, unknown>
  try {
    doc = parseToml(text) as Record<string, unknown>
  } catch (err) {
    const where = err instanceof TomlError ? { line: err.line, column: err.column } : {}
    const first = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)
    throw new InitdataError('INITDATA_BAD_TOML', `initdata document is not TOML: ${first}`, where, { cause: err })
  }
  const version = doc['version']
  if (typeof version !== 'string') throw badField('version', 'initdata "version" is missing or not a string', version)
  if (version !== INITDATA_VERSION) throw badField('version', `initdata version "${entryText(version)}" is not "${INITDATA_VERSION}"`, version)
  const algorithm = algorithmOf(doc['algorithm'])
  if (algorithm === undefined) {
    const given = doc['algorithm'] === undefined ? 'is missing' : `"${entryText(doc['algorithm'])}" is not one of ${INITDATA_ALGORITHMS.join(', ')}`
    throw badField('algorithm', `initdata algorithm ${given}`, doc['algorithm'])
  }
  const rawData = doc['data']
  if (typeof rawData !== 'object' || rawData === null || Array.isArray(rawData) || rawData instanceof Date) {
    throw badField('data', 'initdata has no [data] table')
  }
  const data: Record<string, string> = Object.create(null) as Record<string, string>
  for (const [key, value] of Object.entries(rawData)) {
    if (typeof value !== 'string') throw badField(`data.${entryText(key)}`, `initdata data."${entryText(key)}" is not a string`)
    data[key] = value
  }
  return Object.freeze({ version, algorithm, data: Object.freeze(data), bytes })
}

function gunzipBounded(body: Uint8Array, where: string): Uint8Array {
  try {
    return gunzipSync(body, { maxOutputLength: MAX_INITDATA_TOML_BYTES })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ERR_BUFFER_TOO_LARGE') {
      throw new InitdataError('INITDATA_TOO_LARGE', `${where}: decompressed initdata exceeds ${MAX_INITDATA_TOML_BYTES} B`, {
        max: MAX_INITDATA_TOML_BYTES,
      }, { cause: err })
    }
    throw new InitdataError('INITDATA_BAD_GZIP', `${where}: body is not valid gzip (${code ?? 'error'})`, { zlibCode: code }, { cause: err })
  }
}

/**
 * The guest block device's content: `initdata` ‖ u64 LE length ‖ gzip. Bytes after the
 * announced length (sector padding) are ignored.
 */
export function initdataFromBlock(block: Uint8Array): InitdataDocument {
  const length = initdataBlockBodyLength(block)
  if (block.length < INITDATA_HEADER_BYTES + length) {
    throw new InitdataError('INITDATA_TRUNCATED', `initdata body needs ${length} B after the header, have ${block.length - INITDATA_HEADER_BYTES}`, {
      field: 'body',
      offset: INITDATA_HEADER_BYTES,
      need: length,
      have: block.length - INITDATA_HEADER_BYTES,
    })
  }
  return parseInitdataToml(gunzipBounded(block.subarray(INITDATA_HEADER_BYTES, INITDATA_HEADER_BYTES + length), 'initdata block'))
}

/** Checks the header and returns the announced body length. */
export function initdataBlockBodyLength(block: Uint8Array): number {
  const need = (n: number, field: string, offset: number) => {
    if (block.length < offset + n) {
      throw new InitdataError('INITDATA_TRUNCATED', `initdata ${field} at ${offset} needs ${n} B, have ${Math.max(0, block.length - offset)}`, {
        field,
        offset,
        need: n,
        have: Math.max(0, block.length - offset),
      })
    }
  }
  need(8, 'magic', 0)
  const magic = new TextDecoder('latin1').decode(block.subarray(0, 8))
  if (magic !== INITDATA_MAGIC) {
    throw new InitdataError('INITDATA_BAD_MAGIC', `initdata block starts with ${JSON.stringify(magic)}, not "${INITDATA_MAGIC}"`, {
      magic: Buffer.from(block.subarray(0, 8)).toString('hex'),
    })
  }
  need(8, 'length', 8)
  const length = new DataView(block.buffer, block.byteOffset, block.byteLength).getBigUint64(8, true)
  if (length > BigInt(MAX_INITDATA_COMPRESSED_BYTES)) {
    throw new InitdataError('INITDATA_TOO_LARGE', `initdata block announces ${length} B > ${MAX_INITDATA_COMPRESSED_BYTES} B`, {
      size: length.toString(),
      max: MAX_INITDATA_COMPRESSED_BYTES,
    })
  }
  return Number(length)
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** The pod annotation value: base64(gzip(TOML)). Surrounding whitespace is tolerated. */
export function initdataFromAnnotation(value: string): InitdataDocument {
  const b64 = value.trim()
  if (!BASE64.test(b64)) {
    throw new InitdataError('INITDATA_BAD_BASE64', `${INITDATA_ANNOTATION} is not standard base64`, { length: b64.length })
  }
  if (b64.length > Math.ceil(MAX_INITDATA_COMPRESSED_BYTES / 3) * 4) {
    throw new InitdataError('INITDATA_TOO_LARGE', `${INITDATA_ANNOTATION} is ${b64.length} base64 characters`, {
      size: b64.length,
      max: MAX_INITDATA_COMPRESSED_BYTES,
    })
  }
  return parseInitdataToml(gunzipBounded(Buffer.from(b64, 'base64'), INITDATA_ANNOTATION))
}

/**
 * A document's text: `version`, `algorithm`, then `[data]` in the given key order. Values
 * are TOML multi-line literal strings where they can be (policies stay readable), basic
 * strings otherwise. Parsing the result gives back exactly `data`.
 */
export function renderInitdataToml(algorithm: InitdataAlgorithm, data: Readonly<Record<string, string>>): string {
  const lines = [`version = "${INITDATA_VERSION}"`, `algorithm = "${algorithm}"`, '', '[data]']
  for (const [key, value] of Object.entries(data)) lines.push(`${JSON.stringify(key)} = ${tomlString(value)}`)
  return `${lines.join('\n')}\n`
}

// A literal string cannot hold ''' or control characters other than tab and newline (CR
// is left out: parsers may normalise CRLF); a trailing quote would merge with the
// closing delimiter. The newline after the opening delimiter is trimmed by TOML.
const LITERAL_UNSAFE = /'''|'$|[\u0000-\u0008\u000b-\u001f\u007f]/

function tomlString(value: string): string {
  if (!LITERAL_UNSAFE.test(value)) return `'''\n${value}'''`
  // JSON escapes are valid TOML basic-string escapes, except that TOML also forbids a raw DEL.
  return JSON.stringify(value).replace(/\u007f/g, '\\u007F')
}

/** base64(gzip(TOML)), as Kata's runtime reads the annotation. */
export function encodeInitdataAnnotation(toml: string | Uint8Array): string {
  return gzipSync(typeof toml === 'string' ? Buffer.from(toml, 'utf8') : toml).toString('base64')
}

/** The block device form of a document (what the runtime attaches to the VM). */
export function encodeInitdataBlock(toml: string | Uint8Array): Uint8Array {
  const body = gzipSync(typeof toml === 'string' ? Buffer.from(toml, 'utf8') : toml)
  const out = Buffer.alloc(INITDATA_HEADER_BYTES + body.length)
  out.write(INITDATA_MAGIC, 0, 'latin1')
  out.writeBigUInt64LE(BigInt(body.length), 8)
  body.copy(out, INITDATA_HEADER_BYTES)
  return out
}

/** hash(algorithm, exact TOML bytes): 32, 48 or 64 bytes. Contrast's policy hash is its hex. */
export function initdataDigest(doc: Pick<InitdataDocument, 'algorithm' | 'bytes'>): Uint8Array {
  return new Uint8Array(createHash(doc.algorithm).update(doc.bytes).digest())
}

/** The digest as the TEE field holds it: truncated or zero-padded to the field's size. */
export function digestForField(digest: Uint8Array, field: DigestField): Uint8Array {
  const out = new Uint8Array(DIGEST_FIELD_BYTES[field])
  out.set(digest.subarray(0, out.length))
  return out
}

function fieldOfSize(size: number): DigestField | undefined {
  return (Object.keys(DIGEST_FIELD_BYTES) as DigestField[]).find((f) => DIGEST_FIELD_BYTES[f] === size)
}

/**
 * Refuses (INITDATA_DIGEST_MISMATCH) when the TEE's HOST_DATA (32 B) / MRCONFIGID (48 B)
 * is not the digest of the document we read: the host handed the guest a different
 * configuration from the one the VM was measured with. `expected` is the raw digest.
 */
export function checkInitdataDigest(expected: Uint8Array, evidenceField: Uint8Array): DigestField {
  const field = fieldOfSize(evidenceField.length)
  if (field === undefined) {
    throw new InitdataError('INITDATA_BAD_EVIDENCE_FIELD', `evidence field of ${evidenceField.length} B is neither SNP HOST_DATA (32) nor TDX MRCONFIGID (48)`, {
      size: evidenceField.length,
    })
  }
  const want = digestForField(expected, field)
  if (!timingSafeEqual(want, evidenceField)) {
    throw new InitdataError('INITDATA_DIGEST_MISMATCH', `${field} ${hex(evidenceField)} is not the initdata digest ${hex(want)}`, {
      field,
      expected: hex(want),
      actual: hex(evidenceField),
    })
  }
  return field
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex')
}
