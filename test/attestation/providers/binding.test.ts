import { describe, it, expect } from 'vitest'
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { bindReportData, checkReportDataSize } from '../../../src/attestation/provider.js'
import { thrown } from '../../support.js'

const vcek = new X509Certificate(readFileSync(new URL('../vectors/snp/vcek_milan.der', import.meta.url)))
const spki = new Uint8Array(vcek.publicKey.export({ type: 'spki', format: 'der' }))
const nonce = Uint8Array.from({ length: 32 }, (_, i) => i)

describe('bindReportData', () => {
  it('is SHA-512(PKIX DER public key ‖ nonce), matching an independent computation', () => {
    // Computed with: openssl x509 -pubkey | openssl pkey -pubin -outform DER > spki.der;
    // cat spki.der nonce.bin | openssl dgst -sha512   (nonce = bytes 0x00..0x1f)
    expect(spki.byteLength).toBe(120)
    expect(Buffer.from(bindReportData(spki, nonce)).toString('hex')).toBe(
      '47de1c3644446fa2f1c1e6012492860a32a49355d53b294d801aa4f89475409e' +
        '4866705bb7841d1c1f428b30d615e5598e992c86aa1811299c8dda78577a17be',
    )
  })

  it('fills all 64 bytes and depends on both inputs', () => {
    const a = bindReportData(spki, nonce)
    expect(a.byteLength).toBe(64)
    expect(bindReportData(spki, Uint8Array.from(nonce).fill(1, 0, 1))).not.toEqual(a)
    expect(bindReportData(spki.subarray(1), nonce)).not.toEqual(a)
  })

  it.each([
    ['publicKeyDer', new Uint8Array(0), nonce],
    ['nonce', spki, new Uint8Array(0)],
  ])('refuses an empty %s', (field, key, n) => {
    expect(thrown(() => bindReportData(key, n))).toMatchObject({ code: 'PROVIDER_BAD_INPUT', details: { field } })
  })
})

describe('checkReportDataSize', () => {
  it.each([0, 32, 63, 65])('refuses %i bytes', (n) => {
    expect(thrown(() => checkReportDataSize(new Uint8Array(n)))).toMatchObject({
      code: 'PROVIDER_BAD_INPUT',
      details: { field: 'reportData', length: n, expected: 64 },
    })
  })
  it('accepts 64 bytes', () => {
    expect(() => checkReportDataSize(new Uint8Array(64))).not.toThrow()
  })
})
