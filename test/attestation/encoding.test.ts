import { describe, it, expect } from 'vitest'
import { X509Certificate } from 'node:crypto'
import { ByteReader } from '../../src/attestation/bytes.js'
import {
  certificateExtensions,
  decodeEvidenceFile,
  decodeOid,
  derInteger,
  derString,
  fromHex,
  parseCertificates,
  readDer,
} from '../../src/attestation/encoding.js'
import { thrown } from '../support.js'
import { vector } from './vectors.js'

describe('decodeEvidenceFile', () => {
  const report = vector('snp/report_milan.bin')

  it('keeps binary evidence as is', () => {
    expect(decodeEvidenceFile(report)).toEqual({ bytes: report, encoding: 'binary' })
  })

  it('decodes hex, upper or lower case, with line breaks', () => {
    const upper = Buffer.from(Buffer.from(report).toString('hex').toUpperCase().replace(/(.{64})/g, '$1\n'))
    expect(decodeEvidenceFile(upper)).toEqual({ bytes: report, encoding: 'hex' })
  })

  it('decodes base64 and base64url', () => {
    expect(decodeEvidenceFile(Buffer.from(Buffer.from(report).toString('base64') + '\n'))).toEqual({ bytes: report, encoding: 'base64' })
    expect(decodeEvidenceFile(Buffer.from(Buffer.from(report).toString('base64url')))).toEqual({ bytes: report, encoding: 'base64' })
  })

  it('recognises PEM', () => {
    expect(decodeEvidenceFile(vector('snp/cert_chain_milan')).encoding).toBe('pem')
  })
})

describe('fromHex', () => {
  it('accepts 0x and whitespace, rejects odd length and non-hex', () => {
    expect(fromHex(' 0x0a0B ')).toEqual(Uint8Array.from([10, 11]))
    expect(thrown(() => fromHex('abc', '--report-data'))).toMatchObject({ code: 'ATTESTATION_BAD_INPUT', details: { field: '--report-data', length: 3 } })
    expect(thrown(() => fromHex('zz'))).toMatchObject({ code: 'ATTESTATION_BAD_INPUT' })
  })
})

describe('DER', () => {
  it('decodes OIDs, integers with a leading zero, and strings', () => {
    expect(decodeOid(Uint8Array.from([0x2b, 0x06, 0x01, 0x04, 0x01, 0x9c, 0x78, 0x01, 0x03, 0x08]))).toBe('1.3.6.1.4.1.3704.1.3.8')
    expect(derInteger(Uint8Array.from([0x02, 0x02, 0x00, 0xd9]), 'ucode')).toBe(217)
    expect(derString(Uint8Array.from([0x16, 0x02, 0x41, 0x42]), 'name')).toBe('AB')
  })

  it('rejects negative or wrong-tag integers', () => {
    expect(thrown(() => derInteger(Uint8Array.from([0x02, 0x01, 0x80]), 'x'))).toMatchObject({ code: 'ATTESTATION_MALFORMED', details: { field: 'x' } })
    expect(thrown(() => derInteger(Uint8Array.from([0x04, 0x01, 0x01]), 'x'))).toMatchObject({ code: 'ATTESTATION_MALFORMED' })
  })

  it('reads long-form lengths and reports truncation by field', () => {
    const long = new Uint8Array(3 + 200)
    long.set([0x04, 0x81, 200])
    expect(readDer(new ByteReader(long), 'os').value.bytes.byteLength).toBe(200)
    expect(thrown(() => readDer(new ByteReader(long.subarray(0, 100)), 'os'))).toMatchObject({ code: 'ATTESTATION_TRUNCATED', field: 'os', offset: 3, need: 200, have: 97 })
    expect(thrown(() => readDer(new ByteReader(Uint8Array.from([0x04, 0x85, 1, 1, 1, 1, 1])), 'os'))).toMatchObject({ code: 'ATTESTATION_MALFORMED' })
  })

  it('lists the VCEK extensions', () => {
    const exts = certificateExtensions(vector('snp/vcek.testcer'))
    expect(exts.get('1.3.6.1.4.1.3704.1.4')?.value.byteLength).toBe(64)
    expect(derString(exts.get('1.3.6.1.4.1.3704.1.2')!.value, 'productName')).toBe('Milan-B0')
  })

  it('any truncation of a certificate gives our error', () => {
    const der = vector('snp/vcek.testcer')
    for (let n = 0; n < der.byteLength; n += 7) {
      const err = thrown(() => certificateExtensions(der.subarray(0, n)))
      expect(err.code, `cut at ${n}`).toMatch(/^ATTESTATION_(TRUNCATED|MALFORMED)$/)
    }
  })
})

describe('parseCertificates', () => {
  it('reads a PEM bundle in order, DER, and X509Certificate objects', () => {
    const chain = parseCertificates(vector('snp/cert_chain_milan'))
    expect(chain.map((c) => c.subject.split('\n').at(-1))).toEqual(['CN=SEV-Milan', 'CN=ARK-Milan'])
    const vcek = parseCertificates(vector('snp/vcek.testcer'))[0]!
    expect(vcek.serialNumber).toBe('0')
    expect(parseCertificates([vcek, chain[0]!])).toHaveLength(2)
  })

  it('names the field of an unusable certificate', () => {
    const err = thrown(() => parseCertificates(Uint8Array.from([1, 2, 3]), 'vcek'))
    expect(err).toMatchObject({ code: 'ATTESTATION_BAD_INPUT', details: { field: 'vcek' } })
    expect(err.cause).toBeInstanceOf(Error)
  })

  it('accepts hex-encoded DER', () => {
    const hex = Buffer.from(Buffer.from(vector('snp/vcek_milan.der')).toString('hex'))
    expect(parseCertificates(hex)[0]).toBeInstanceOf(X509Certificate)
  })
})
