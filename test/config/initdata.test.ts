import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { describe, it, expect } from 'vitest'
import {
  INITDATA_ANNOTATION,
  MAX_INITDATA_COMPRESSED_BYTES,
  MAX_INITDATA_TOML_BYTES,
  checkInitdataDigest,
  digestForField,
  encodeInitdataAnnotation,
  encodeInitdataBlock,
  initdataDigest,
  initdataFromAnnotation,
  initdataFromBlock,
  parseInitdataToml,
  renderInitdataToml,
} from '../../src/config/index.js'
import { INITDATA_DOC as DOC, initdataBlock as block } from '../fixtures/initdata.js'
import { thrown } from '../support.js'

describe('parseInitdataToml', () => {
  it('reads version, algorithm and every [data] entry, and keeps the exact bytes', () => {
    const doc = parseInitdataToml(DOC)
    expect(doc.version).toBe('0.1.0')
    expect(doc.algorithm).toBe('sha384')
    expect(Object.keys(doc.data)).toEqual(['aa.toml', 'podvm-mesh.toml'])
    expect(doc.data['aa.toml']).toBe('[token_configs]\n')
    expect(Buffer.from(doc.bytes).toString('utf8')).toBe(DOC)
  })

  it.each([['sha-256', 'sha256'], ['SHA512', 'sha512'], ['sha384', 'sha384']])('normalises algorithm %s to %s', (given, want) => {
    expect(parseInitdataToml(`version = "0.1.0"\nalgorithm = "${given}"\n[data]\n`).algorithm).toBe(want)
  })

  it.each([
    ['no version', 'algorithm = "sha256"\n[data]\n', 'version'],
    ['version 0.2.0', 'version = "0.2.0"\nalgorithm = "sha256"\n[data]\n', 'version'],
    ['version as number', 'version = 1\nalgorithm = "sha256"\n[data]\n', 'version'],
    ['md5', 'version = "0.1.0"\nalgorithm = "md5"\n[data]\n', 'algorithm'],
    ['no algorithm', 'version = "0.1.0"\n[data]\n', 'algorithm'],
    ['no data', 'version = "0.1.0"\nalgorithm = "sha256"\n', 'data'],
    ['data not a table', 'version = "0.1.0"\nalgorithm = "sha256"\ndata = "x"\n', 'data'],
    ['non-string data value', 'version = "0.1.0"\nalgorithm = "sha256"\n[data]\n"policy.rego" = 3\n', 'data.policy.rego'],
    // The host writes the block device: shapes no honest tool produces.
    ['algorithm a table nested 100000 deep', `version = "0.1.0"\nalgorithm${'.a'.repeat(100_000)} = 1\n[data]\n`, 'algorithm'],
    ['algorithm a string of 1 MiB', `version = "0.1.0"\nalgorithm = "${'x'.repeat(1 << 20)}"\n[data]\n`, 'algorithm'],
  ])('%s → INITDATA_BAD_FIELD naming %s', (_, text, field) => {
    const err = thrown(() => parseInitdataToml(text))
    expect(err).toMatchObject({ code: 'INITDATA_BAD_FIELD', details: { field } })
    expect(err.message.length).toBeLessThan(400)
  })

  it('rejects text that is not TOML, with line and column', () => {
    const err = thrown(() => parseInitdataToml('version = "0.1.0"\nalgorithm = \n'))
    expect(err.code).toBe('INITDATA_BAD_TOML')
    expect(err.details.line).toBe(2)
  })

  it('rejects bytes that are not UTF-8', () => {
    expect(thrown(() => parseInitdataToml(Uint8Array.from([0x76, 0xff, 0xfe]))).code).toBe('INITDATA_BAD_TOML')
  })

  it('ignores unknown top-level keys (as Kata does) but they stay in the digest', () => {
    const text = 'version = "0.1.0"\nalgorithm = "sha256"\nextra = 1\n[data]\n'
    const doc = parseInitdataToml(text)
    expect(Buffer.from(initdataDigest(doc)).toString('hex')).toBe(createHash('sha256').update(text).digest('hex'))
  })
})

describe('renderInitdataToml', () => {
  it.each([
    ['plain policy', 'package agent_policy\n\ndefault X := true\n'],
    ['triple quote inside', "a = '''x'''\n"],
    ['ends in a quote', "it's'"],
    ['carriage return', 'a\r\nb'],
    ['control and DEL', 'a\u0001b\u007fc'],
    ['leading newline', '\nfirst line empty'],
    ['empty', ''],
    ['unicode', 'π = "ü" \u2028'],
  ])('round-trips %s exactly', (_, value) => {
    const text = renderInitdataToml('sha256', { 'x.toml': value, 'policy.rego': value })
    const doc = parseInitdataToml(text)
    expect(doc.data).toEqual({ 'x.toml': value, 'policy.rego': value })
    expect(doc.algorithm).toBe('sha256')
  })
})

describe('block device form', () => {
  it('reads magic, u64 LE length and gzip body; trailing sector padding is ignored', () => {
    const body = gzipSync(DOC)
    const doc = initdataFromBlock(Buffer.concat([block(body), Buffer.alloc(512 - ((16 + body.length) % 512))]))
    expect(Buffer.from(doc.bytes).toString('utf8')).toBe(DOC)
  })

  it('encodeInitdataBlock writes the same layout', () => {
    const out = Buffer.from(encodeInitdataBlock(DOC))
    expect(out.subarray(0, 8).toString('latin1')).toBe('initdata')
    expect(Number(out.readBigUInt64LE(8))).toBe(out.length - 16)
    expect(initdataFromBlock(out).data).toEqual(parseInitdataToml(DOC).data)
  })

  it.each([
    [0, 'magic', 0],
    [5, 'magic', 0],
    [8, 'length', 8],
    [15, 'length', 8],
    [16, 'body', 16],
    [40, 'body', 16],
  ])('cut to %i bytes: INITDATA_TRUNCATED at %s (offset %i)', (n, field, offset) => {
    const full = block(gzipSync(DOC))
    const err = thrown(() => initdataFromBlock(full.subarray(0, n)))
    expect(err).toMatchObject({ code: 'INITDATA_TRUNCATED', details: { field, offset } })
  })

  it('every truncation throws InitdataError, never RangeError', () => {
    const full = block(gzipSync(DOC))
    for (let n = 0; n < full.length; n++) {
      const err = thrown(() => initdataFromBlock(full.subarray(0, n)))
      expect(err.code, `cut at ${n}`).toMatch(/^INITDATA_/)
    }
  })

  it('rejects a wrong magic', () => {
    const b = block(gzipSync(DOC))
    b.write('INITDATA', 0, 'latin1')
    expect(thrown(() => initdataFromBlock(b))).toMatchObject({ code: 'INITDATA_BAD_MAGIC' })
  })

  it('rejects an announced length above the bound before reading further', () => {
    const err = thrown(() => initdataFromBlock(block(Buffer.alloc(0), MAX_INITDATA_COMPRESSED_BYTES + 1)))
    expect(err).toMatchObject({ code: 'INITDATA_TOO_LARGE', details: { size: String(MAX_INITDATA_COMPRESSED_BYTES + 1) } })
    expect(thrown(() => initdataFromBlock(block(Buffer.alloc(0), 2 ** 63)))).toMatchObject({ code: 'INITDATA_TOO_LARGE' })
  })

  it('rejects a gzip bomb by decompressed size', () => {
    const bomb = gzipSync(Buffer.alloc(MAX_INITDATA_TOML_BYTES + 1, 0x20))
    expect(thrown(() => initdataFromBlock(block(bomb)))).toMatchObject({ code: 'INITDATA_TOO_LARGE' })
  })

  it('rejects a body that is not gzip', () => {
    expect(thrown(() => initdataFromBlock(block(Buffer.from(DOC))))).toMatchObject({ code: 'INITDATA_BAD_GZIP' })
  })

})

describe('annotation form', () => {
  it('reads base64(gzip(TOML)) written independently', () => {
    const value = gzipSync(DOC).toString('base64')
    expect(Buffer.from(initdataFromAnnotation(value).bytes).toString('utf8')).toBe(DOC)
  })

  it('encodeInitdataAnnotation round-trips', () => {
    const value = encodeInitdataAnnotation(DOC)
    expect(Buffer.from(initdataFromAnnotation(value).bytes).toString()).toBe(DOC)
  })

  it.each([['url-safe alphabet', '-_-_'], ['bad padding', 'abc=='], ['stray character', 'ab!d'], ['missing padding', 'abcde']])(
    '%s → INITDATA_BAD_BASE64',
    (_, value) => {
      expect(thrown(() => initdataFromAnnotation(value))).toMatchObject({ code: 'INITDATA_BAD_BASE64' })
    },
  )

  it('base64 that is not gzip → INITDATA_BAD_GZIP', () => {
    expect(thrown(() => initdataFromAnnotation(Buffer.from(DOC).toString('base64')))).toMatchObject({ code: 'INITDATA_BAD_GZIP' })
  })

  it('names the annotation constant Kata reads', () => {
    expect(INITDATA_ANNOTATION).toBe('io.katacontainers.config.hypervisor.cc_init_data')
  })
})

describe('digest', () => {
  it.each(['sha256', 'sha384', 'sha512'] as const)('%s over the exact bytes, padded to 32/48 as SNP/TDX report it', (alg) => {
    const text = DOC.replace('sha384', alg)
    const doc = parseInitdataToml(text)
    const raw = createHash(alg).update(Buffer.from(text, 'utf8')).digest()
    expect(Buffer.from(initdataDigest(doc))).toEqual(raw)
    const snp = Buffer.alloc(32)
    raw.copy(snp, 0, 0, 32)
    const tdx = Buffer.alloc(48)
    raw.copy(tdx, 0, 0, Math.min(48, raw.length))
    expect(Buffer.from(digestForField(initdataDigest(doc), 'snp-host-data'))).toEqual(snp)
    expect(Buffer.from(digestForField(initdataDigest(doc), 'tdx-mrconfigid'))).toEqual(tdx)
    expect(checkInitdataDigest(initdataDigest(doc), snp)).toBe('snp-host-data')
    expect(checkInitdataDigest(initdataDigest(doc), tdx)).toBe('tdx-mrconfigid')
  })

  it('sha256 in the 48-byte MRCONFIGID is zero-padded', () => {
    const doc = parseInitdataToml(DOC.replace('sha384', 'sha256'))
    const tdx = digestForField(initdataDigest(doc), 'tdx-mrconfigid')
    expect(Buffer.from(tdx.subarray(32)).equals(Buffer.alloc(16))).toBe(true)
  })

  it('a one-byte change of the text changes the digest (no re-serialisation)', () => {
    const a = initdataDigest(parseInitdataToml(DOC))
    const b = initdataDigest(parseInitdataToml(DOC.replace('[data]', '[data] ')))
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false)
  })

  it('refuses a different evidence value with both values in details', () => {
    const digest = initdataDigest(parseInitdataToml(DOC))
    const other = Buffer.from(digestForField(digest, 'snp-host-data'))
    other.writeUInt8(other.readUInt8(31) ^ 1, 31)
    const err = thrown(() => checkInitdataDigest(digest, other))
    expect(err).toMatchObject({
      code: 'INITDATA_DIGEST_MISMATCH',
      details: { field: 'snp-host-data', actual: other.toString('hex'), expected: Buffer.from(digest.subarray(0, 32)).toString('hex') },
    })
  })

  it('an all-zero HOST_DATA (no initdata given) is a mismatch', () => {
    const digest = initdataDigest(parseInitdataToml(DOC))
    expect(thrown(() => checkInitdataDigest(digest, new Uint8Array(48))).code).toBe('INITDATA_DIGEST_MISMATCH')
  })

  it.each([0, 31, 64])('an evidence field of %i bytes → INITDATA_BAD_EVIDENCE_FIELD', (n) => {
    expect(thrown(() => checkInitdataDigest(new Uint8Array(32), new Uint8Array(n)))).toMatchObject({
      code: 'INITDATA_BAD_EVIDENCE_FIELD',
      details: { size: n },
    })
  })
})
