import { describe, it, expect, beforeAll } from 'vitest'
import { X509Certificate } from 'node:crypto'
import { parseTdxQuote, TDX_BODY_LAYOUT, TDX10_BODY_BYTES, TDX15_BODY_BYTES, TDX15_BODY_EXTRA_LAYOUT } from '../../../src/attestation/tdx/quote.js'
import { attestationPublicKey, verifyTdx, type TdxVerifyOptions } from '../../../src/attestation/tdx/verify.js'
import { intelSgxRootCa, INTEL_SGX_ROOT_CA_SHA256 } from '../../../src/attestation/tdx/roots.js'
import { amdRoots } from '../../../src/attestation/snp/roots.js'
import { certFingerprint, parseCertificates, toHex } from '../../../src/attestation/encoding.js'
import { ParseError } from '../../../src/attestation/errors.js'
import type { VerifyReasonCode } from '../../../src/attestation/verifier.js'
import { thrown } from '../../support.js'
import { AT, flip, vector } from '../vectors.js'
import { selfSignedP256 } from '../sim-chain.js'

const V4 = vector('tdx/tdx_prod_quote_SPR_E4.dat')
const V5 = vector('tdx/quote_v5_sample.dat')
const codes = (r: { reasons: readonly { code: VerifyReasonCode }[] }): VerifyReasonCode[] => r.reasons.map((x) => x.code)

const u16 = (n: number): Uint8Array => Uint8Array.of(n & 0xff, n >> 8)
const u32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n, true)
  return b
}
const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts))

/** The quote re-serialised with a different PCK certification data (sizes recomputed). */
function withPckData(quote: Uint8Array, pem: Uint8Array, innerType = 5): Uint8Array {
  const q = parseTdxQuote(quote)
  const cert = concat(q.qeReportBytes, q.qeReportSignature, u16(q.qeAuthData.byteLength), q.qeAuthData, u16(innerType), u32(pem.byteLength), pem)
  const signed = concat(q.signature, q.attestationKey, u16(6), u32(cert.byteLength), cert)
  return concat(q.signedBytes, u32(signed.byteLength), signed)
}

function pemOf(certs: X509Certificate[]): Uint8Array {
  return Buffer.from(certs.map((c) => c.toString()).join(''))
}

describe('TDX layouts', () => {
  it('the 1.0 body covers 584 bytes, 1.5 appends to 648', () => {
    let next = 0
    for (const row of [...TDX_BODY_LAYOUT, ...TDX15_BODY_EXTRA_LAYOUT]) {
      expect(row.offset, row.field).toBe(next)
      next = row.offset + row.size
      if (row.field === 'reportData') expect(next).toBe(TDX10_BODY_BYTES)
    }
    expect(next).toBe(TDX15_BODY_BYTES)
  })
})

describe('parseTdxQuote on the vectors', () => {
  it.each([
    ['v4', 4, 2, 0x278, 4299, 4, 4974 - 4935, false],
    ['v5', 5, 3, 0x2be, 4300, 7, 0, true],
  ] as const)('%s structure', (which, version, bodyType, signedEnd, sdLen, isvSvn, trailing, nul) => {
    const q = parseTdxQuote(which === 'v4' ? V4 : V5)
    expect(q.header).toMatchObject({ version, attestationKeyType: 2, teeType: 0x81 })
    expect(toHex(q.header.qeVendorId)).toBe('939a7233f79c4ca9940a0db3957f0607')
    expect(q.bodyType).toBe(bodyType)
    expect(q.signedBytes.byteLength).toBe(signedEnd)
    expect(q.signedDataLength).toBe(sdLen)
    expect(q.certDataType).toBe(6)
    expect(q.pckCertDataType).toBe(5)
    expect(q.qeAuthData.byteLength).toBe(32)
    expect(toHex(q.qeReport.mrSigner)).toBe('dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5')
    expect(q.qeReport.isvProdId).toBe(2)
    expect(q.qeReport.isvSvn).toBe(isvSvn)
    expect(q.trailingBytes).toBe(trailing)
    expect(q.pckCertData[q.pckCertData.byteLength - 1] === 0).toBe(nul)
  })
})

describe('verifyTdx on the vectors', () => {
  it('v4 (tdx_prod_quote_SPR_E4.dat): verified with the expected claims', () => {
    const r = verifyTdx(V4, { at: AT })
    expect(r).toMatchObject({ tee: 'tdx', verified: true, reasons: [] })
    const c = r.claims
    expect(toHex(c.teeTcbSvn)).toBe('03000400000000000000000000000000')
    expect(toHex(c.mrSeam)).toBe('2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c656')
    expect(toHex(c.tdAttributes)).toBe('0000004000000000')
    expect(toHex(c.xfam)).toBe('e71a060000000000')
    expect(toHex(c.mrTd)).toBe('6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb')
    expect(toHex(c.rtmr[0])).toBe('2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e50b51779c6593f32a')
    expect(toHex(c.rtmr[3])).toBe('00'.repeat(48))
    expect(toHex(c.mrConfigId)).toBe('00'.repeat(48))
    expect(toHex(c.reportData)).toBe('6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113')
    expect(c.debug).toBe(false)
    expect(c.teeTcbSvn2).toBeUndefined()
    expect(c.qe.isvSvn).toBe(4)
    expect(c.pck).toMatchObject({
      subject: 'Intel SGX PCK Certificate',
      issuer: 'Intel SGX PCK Platform CA',
      rootSha256: INTEL_SGX_ROOT_CA_SHA256,
    })
    expect(toHex(c.pck!.fmspc!)).toBe('50806f000000')
    expect(c.pck!.notBefore.toISOString().slice(0, 10)).toBe('2022-09-20')
    expect(c.pck!.notAfter.toISOString().slice(0, 10)).toBe('2029-09-20')
  })

  it('v5 (quote_v5_sample.dat): verified with the expected claims', () => {
    const r = verifyTdx(V5, { at: AT })
    expect(r).toMatchObject({ tee: 'tdx', verified: true, reasons: [] })
    const c = r.claims
    expect(c.version).toBe(5)
    expect(c.bodyType).toBe(3)
    expect(toHex(c.teeTcbSvn)).toBe('0b010400000000000000000000000000')
    expect(toHex(c.teeTcbSvn2!)).toBe('0d010400000000000000000000000000')
    expect(toHex(c.mrServiceTd!)).toBe('00'.repeat(48))
    expect(toHex(c.mrSeam)).toBe('7bf063280e94fb051f5dd7b1fc59ce9aac42bb961df8d44b709c9b0ff87a7b4df648657ba6d1189589feab1d5a3c9a9d')
    expect(toHex(c.tdAttributes)).toBe('0000001000000000')
    expect(toHex(c.xfam)).toBe('e702060000000000')
    expect(toHex(c.mrTd)).toBe('7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876')
    expect(toHex(c.rtmr[0])).toBe('5c8daf76063a71ac8fcef4067564661fc682ed7944c7a5d21dbbced02f61ceff4ba0678c6aef3bdae8cbc614cec24619')
    expect(toHex(c.rtmr[3])).toBe('00'.repeat(48))
    expect(toHex(c.mrConfigId)).toBe('00'.repeat(48))
    expect(toHex(c.reportData)).toBe('945eaacf5abc1f719d8666a942fda03d1edcb4490277396093dc5a5289ab9f1e094aed63060cd4a4933a4dd537ed1255c9c79ecb3ed82cd1b486233e31c25c3a')
    expect(c.debug).toBe(false)
    expect(c.qe.isvSvn).toBe(7)
    expect(toHex(c.pck!.fmspc!)).toBe('90c06f000000')
    expect(c.pck!.notBefore.toISOString().slice(0, 10)).toBe('2026-01-27')
    expect(c.pck!.notAfter.toISOString().slice(0, 10)).toBe('2033-01-27')
  })

  it('the embedded root equals the pinned Intel SGX Root CA and trusted_root.pem', () => {
    const file = parseCertificates(vector('tdx/trusted_root.pem'))[0]!
    expect(certFingerprint(file)).toBe('44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3')
    expect(certFingerprint(intelSgxRootCa())).toBe(certFingerprint(file))
    for (const q of [V4, V5]) {
      const chain = parseCertificates(parseTdxQuote(q).pckCertData)
      expect(chain.map((c) => c.subject.match(/CN=(.*)/)?.[1])).toEqual(['Intel SGX PCK Certificate', 'Intel SGX PCK Platform CA', 'Intel SGX Root CA'])
      expect(certFingerprint(chain[2]!)).toBe(INTEL_SGX_ROOT_CA_SHA256)
    }
  })

  it('upstream pinned times verify too (v4 at 2023-07-01, v5 at 2026-02-03)', () => {
    expect(verifyTdx(V4, { at: new Date('2023-07-01T00:00:00Z') }).verified).toBe(true)
    expect(verifyTdx(V5, { at: new Date('2026-02-03T00:00:00Z') }).verified).toBe(true)
  })
})

describe('verifyTdx: README negative cases', () => {
  it('v4 mr_td[0] flipped: quote signature invalid, QE signature and binding still valid', () => {
    expect(codes(verifyTdx(flip(V4, 0x0b8), { at: AT }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID'])
  })

  it('v5 report_data[0] flipped: quote signature invalid', () => {
    expect(codes(verifyTdx(flip(V5, 0x23e), { at: AT }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID'])
  })

  it('v5 parsed with v4 offsets is an error, and its key bytes are not a P-256 point', () => {
    const asV4 = Uint8Array.from(V5)
    asV4[0] = 4
    const err = thrown(() => parseTdxQuote(asV4))
    expect(err.code).toMatch(/^ATTESTATION_(TRUNCATED|MALFORMED)$/)
    expect(attestationPublicKey(V5.subarray(0x2bc, 0x2fc))).toBeUndefined()
    expect(attestationPublicKey(V4.subarray(0x2bc, 0x2fc))).toBeDefined()
  })

  it.each([
    ['v4 quote signature r', 'v4', 0x27c],
    ['v4 quote signature s', 'v4', 0x27c + 63],
    ['v5 quote signature r', 'v5', 0x2be + 4],
  ] as const)('%s byte flipped: quote signature invalid', (_n, which, off) => {
    expect(codes(verifyTdx(flip(which === 'v4' ? V4 : V5, off), { at: AT }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID'])
  })

  it('v4 QE report signature byte flipped', () => {
    expect(codes(verifyTdx(flip(V4, 0x482 + 10), { at: AT }))).toEqual(['TDX_QE_REPORT_SIGNATURE_INVALID'])
  })

  it('v4 QE report byte flipped: QE report signature invalid', () => {
    expect(codes(verifyTdx(flip(V4, 0x302), { at: AT }))).toEqual(['TDX_QE_REPORT_SIGNATURE_INVALID'])
  })

  it.each([
    ['v4', 0x4c4],
    ['v5', 0x50a],
  ] as const)('%s QE auth data flipped: binding invalid', (which, off) => {
    const q = which === 'v4' ? V4 : V5
    const r = verifyTdx(flip(q, off), { at: AT })
    expect(codes(r)).toEqual(['TDX_QE_REPORT_DATA_MISMATCH'])
  })

  it('after the v4 PCK notAfter: expired', () => {
    const r = verifyTdx(V4, { at: new Date('2029-10-01T00:00:00Z') })
    expect(r.reasons).toEqual([expect.objectContaining({ code: 'CERT_EXPIRED', details: expect.objectContaining({ cert: 'pck' }) })])
  })

  it('before the v5 PCK notBefore: not yet valid', () => {
    const r = verifyTdx(V5, { at: new Date('2026-01-01T00:00:00Z') })
    expect(r.reasons).toEqual([expect.objectContaining({ code: 'CERT_NOT_YET_VALID', details: expect.objectContaining({ cert: 'pck' }) })])
  })

  describe('chain substitutions', () => {
    let fakeRoot: { cert: X509Certificate; pem: string }
    beforeAll(async () => {
      fakeRoot = await selfSignedP256('Intel SGX Root CA')
    })

    it('embedded root replaced by another "Intel SGX Root CA": not trusted, intermediate not signed by it', () => {
      const [leaf, inter] = parseCertificates(parseTdxQuote(V4).pckCertData)
      const r = verifyTdx(withPckData(V4, pemOf([leaf!, inter!, fakeRoot.cert])), { at: AT })
      expect(codes(r)).toEqual(['TDX_ROOT_NOT_TRUSTED', 'TDX_CHAIN_SIGNATURE_INVALID'])
      expect(r.reasons[1]?.details).toEqual({ cert: 'intermediate' })
    })

    it('trusting another root instead of Intel\'s', () => {
      const r = verifyTdx(V4, { at: AT, roots: { root: [fakeRoot.cert, ...amdRoots()] } })
      expect(codes(r)).toEqual(['TDX_ROOT_NOT_TRUSTED'])
    })

    it('leaf and intermediate swapped', () => {
      const [leaf, inter, root] = parseCertificates(parseTdxQuote(V4).pckCertData)
      const r = verifyTdx(withPckData(V4, pemOf([inter!, leaf!, root!])), { at: AT })
      expect(codes(r)).toEqual(['TDX_QE_REPORT_SIGNATURE_INVALID', 'TDX_CHAIN_SIGNATURE_INVALID', 'TDX_CHAIN_SIGNATURE_INVALID'])
      expect(r.reasons.slice(1).map((x) => x.details)).toEqual([{ cert: 'intermediate' }, { cert: 'pck' }])
    })

    it('the v5 chain inside the v4 quote: QE report signature invalid', () => {
      const r = verifyTdx(withPckData(V4, parseTdxQuote(V5).pckCertData), { at: AT })
      expect(codes(r)).toEqual(['TDX_QE_REPORT_SIGNATURE_INVALID'])
    })

    it('a chain of two certificates, or none', () => {
      const [leaf, inter] = parseCertificates(parseTdxQuote(V4).pckCertData)
      expect(verifyTdx(withPckData(V4, pemOf([leaf!, inter!])), { at: AT }).reasons).toEqual([
        expect.objectContaining({ code: 'TDX_PCK_CHAIN_MALFORMED', details: { count: 2 } }),
      ])
      expect(codes(verifyTdx(withPckData(V4, Buffer.from('no certificates here')), { at: AT }))).toEqual(['TDX_PCK_CHAIN_MALFORMED'])
    })

    it('a PCK that is not a P-256 key', () => {
      const [, inter, root] = parseCertificates(parseTdxQuote(V4).pckCertData)
      const vcek = parseCertificates(vector('snp/vcek.testcer'))[0]!
      const r = verifyTdx(withPckData(V4, pemOf([vcek, inter!, root!])), { at: AT })
      expect(r.reasons[0]).toMatchObject({ code: 'TDX_PCK_CHAIN_MALFORMED', details: { field: 'pck.publicKey' } })
      expect(codes(r)).toEqual(['TDX_PCK_CHAIN_MALFORMED', 'TDX_CHAIN_SIGNATURE_INVALID'])
    })

    it('inner certification data type other than 5', () => {
      const r = verifyTdx(withPckData(V4, parseTdxQuote(V4).pckCertData, 3), { at: AT })
      expect(r.reasons).toEqual([expect.objectContaining({ code: 'TDX_PCK_CHAIN_MALFORMED', details: { pckCertDataType: 3 } })])
      expect(r.claims.pck).toBeUndefined()
    })

    it('re-serialising without changes still verifies (the helper is faithful)', () => {
      expect(verifyTdx(withPckData(V4, parseTdxQuote(V4).pckCertData), { at: AT }).verified).toBe(true)
    })
  })

  it.each<[string, number, VerifyReasonCode]>([
    ['attestation key type', 0x02, 'TDX_ATTESTATION_KEY_TYPE_UNSUPPORTED'],
    ['TEE type', 0x04, 'TDX_TEE_TYPE_UNSUPPORTED'],
    ['QE vendor id', 0x0c, 'TDX_QE_VENDOR_UNKNOWN'],
  ])('header %s changed: named, and the quote signature breaks too', (_n, off, code) => {
    expect(codes(verifyTdx(flip(V4, off), { at: AT }))).toEqual([code, 'TDX_QUOTE_SIGNATURE_INVALID'])
  })

  it('attestation key not on the curve', () => {
    const r = verifyTdx(flip(V4, 0x2bc + 5), { at: AT })
    expect(codes(r)).toEqual(['TDX_ATTESTATION_KEY_INVALID', 'TDX_QE_REPORT_DATA_MISMATCH'])
  })

  it('QE mrsigner changed: not Intel\'s TDQE (and the QE report signature breaks)', () => {
    expect(codes(verifyTdx(flip(V4, 0x302 + 0x80), { at: AT }))).toEqual(['TDX_QE_IDENTITY_MISMATCH', 'TDX_QE_REPORT_SIGNATURE_INVALID'])
  })
})

describe('verifyTdx policy', () => {
  const c = verifyTdx(V4, { at: AT }).claims
  it.each<[string, TdxVerifyOptions['policy'], VerifyReasonCode[]]>([
    ['MRTD allowed', { mrTd: [c.mrTd] }, []],
    ['MRTD not allowed', { mrTd: [new Uint8Array(48)] }, ['TDX_MR_TD_NOT_ALLOWED']],
    ['MRCONFIGID allowed', { mrConfigId: [new Uint8Array(48)] }, []],
    ['MRCONFIGID not allowed', { mrConfigId: [new Uint8Array(48).fill(1)] }, ['TDX_MR_CONFIG_ID_NOT_ALLOWED']],
    ['TEE TCB SVN met', { minimumTeeTcbSvn: Uint8Array.of(3, 0, 4) }, []],
    ['TEE TCB SVN below', { minimumTeeTcbSvn: Uint8Array.of(3, 0, 5) }, ['TDX_TEE_TCB_SVN_BELOW_MINIMUM']],
    ['RTMR0-2 allowed, 3 unchecked', { rtmr: [[c.rtmr[0]], [c.rtmr[1]], [new Uint8Array(48), c.rtmr[2]]] }, []],
    ['RTMR1 not allowed', { rtmr: [undefined, [c.rtmr[0]]] }, ['TDX_RTMR_NOT_ALLOWED']],
    ['TD attributes allowed', { tdAttributes: [c.tdAttributes] }, []],
    ['TD attributes not allowed', { tdAttributes: [new Uint8Array(8)] }, ['TDX_TD_ATTRIBUTES_NOT_ALLOWED']],
    ['XFAM allowed / not', { xfam: [new Uint8Array(8), c.xfam] }, []],
    ['XFAM not allowed', { xfam: [new Uint8Array(8)] }, ['TDX_XFAM_NOT_ALLOWED']],
    ['MRSEAM allowed', { mrSeam: [c.mrSeam] }, []],
    ['MRSEAM not allowed', { mrSeam: [new Uint8Array(48)] }, ['TDX_MR_SEAM_NOT_ALLOWED']],
    ['QE ISVSVN 4 meets 4', { minimumQeSvn: 4 }, []],
    ['QE ISVSVN 4 below 5', { minimumQeSvn: 5 }, ['TDX_QE_SVN_BELOW_MINIMUM']],
    ['report data matches', { reportData: c.reportData }, []],
    ['report data differs', { reportData: flip(c.reportData, 0) }, ['REPORT_DATA_MISMATCH']],
  ])('%s', (_n, policy, expected) => {
    expect(codes(verifyTdx(V4, { at: AT, policy }))).toEqual(expected)
  })

  it('MIGRATABLE (bit 29), a TUD profiling bit (5) or a reserved bit (40): refused by default (signature broken as well)', () => {
    const attr = 0x30 + 0x78
    const migratable = flip(V4, attr + 3, 0x20)
    expect(codes(verifyTdx(migratable, { at: AT }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID', 'TDX_TD_ATTRIBUTES_NOT_ALLOWED'])
    expect(codes(verifyTdx(migratable, { at: AT, policy: { allowMigratable: true } }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID'])
    expect(codes(verifyTdx(flip(V4, attr, 0x20), { at: AT }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID', 'TDX_TD_ATTRIBUTES_NOT_ALLOWED'])
    expect(codes(verifyTdx(flip(V4, attr + 5, 0x01), { at: AT }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID', 'TDX_TD_ATTRIBUTES_NOT_ALLOWED'])
    // The v5 quote's SEPT_VE_DISABLE (bit 28) and the v4 quote's PKS (bit 30) are fine.
    expect(verifyTdx(V5, { at: AT }).verified).toBe(true)
  })

  it("QE report with DEBUG (attributes bit 1) is not Intel's TDQE (QE signature broken as well)", () => {
    expect(codes(verifyTdx(flip(V4, 0x302 + 0x30, 0x02), { at: AT }))).toEqual(['TDX_QE_ATTRIBUTES_MISMATCH', 'TDX_QE_REPORT_SIGNATURE_INVALID'])
    expect(codes(verifyTdx(flip(V4, 0x302 + 0x10, 0x01), { at: AT }))).toEqual(['TDX_QE_ATTRIBUTES_MISMATCH', 'TDX_QE_REPORT_SIGNATURE_INVALID'])
    // MODE64BIT (bit 2) is outside Intel's mask: the vectors' QE has it set.
    expect(verifyTdx(V4, { at: AT }).claims.qe.attributes[0]).toBe(0x15)
  })

  it('a TDX module not signed by Intel (MRSIGNERSEAM or SEAM attributes non-zero)', () => {
    expect(codes(verifyTdx(flip(V4, 0x30 + 0x40), { at: AT }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID', 'TDX_MODULE_NOT_INTEL'])
    expect(codes(verifyTdx(flip(V4, 0x30 + 0x70), { at: AT }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID', 'TDX_MODULE_NOT_INTEL'])
  })

  it('DEBUG attribute: forbidden unless allowed (signature broken by the edit as well)', () => {
    const dbg = flip(V4, 0x30 + 0x78)
    expect(codes(verifyTdx(dbg, { at: AT }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID', 'TDX_DEBUG_ENABLED'])
    expect(codes(verifyTdx(dbg, { at: AT, policy: { allowDebug: true } }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID'])
    expect(verifyTdx(dbg, { at: AT, policy: { allowDebug: true } }).claims.debug).toBe(true)
  })
})

describe('parseTdxQuote rejects', () => {
  it.each([
    ['v4', 4935],
    ['v5', 5006],
  ] as const)('%s: every truncation before the end of the signed data with ParseError', (which, end) => {
    const q = which === 'v4' ? V4 : V5
    for (let n = 0; n < end; n++) {
      const err = thrown(() => parseTdxQuote(q.subarray(0, n)))
      expect(err, `cut at ${n}`).toBeInstanceOf(ParseError)
    }
    for (let n = end; n <= q.byteLength; n++) expect(parseTdxQuote(q.subarray(0, n)).trailingBytes).toBe(n - end)
  })

  it.each([
    ['v4', 1, 'version', 0, 2, 1],
    ['v4', 0x278 + 2, 'signedDataLength', 0x278, 4, 2],
    ['v4', 0x2bc + 10, 'signedData', 0x27c, 4299, 0x2bc + 10 - 0x27c],
    ['v5', 0x33, 'bodySize', 0x32, 4, 1],
    ['v5', 0x100, 'body', 0x36, 648, 0x100 - 0x36],
  ] as const)('%s cut to %i bytes: %s', (which, n, field, offset, need, have) => {
    const q = which === 'v4' ? V4 : V5
    expect(thrown(() => parseTdxQuote(q.subarray(0, n)))).toMatchObject({ code: 'ATTESTATION_TRUNCATED', field, offset, need, have })
  })

  it.each([3, 6, 0x0104])('version %i', (version) => {
    const bad = Uint8Array.from(V4)
    new DataView(bad.buffer).setUint16(0, version, true)
    expect(thrown(() => parseTdxQuote(bad))).toMatchObject({ code: 'ATTESTATION_UNSUPPORTED_VERSION', details: { tee: 'tdx', field: 'version', version } })
  })

  it('v5 body type 4, and a body size that does not fit its type', () => {
    const t4 = Uint8Array.from(V5)
    t4[0x30] = 4
    expect(thrown(() => parseTdxQuote(t4))).toMatchObject({ code: 'ATTESTATION_UNSUPPORTED_VERSION', details: { field: 'bodyType', bodyType: 4 } })
    const t2 = Uint8Array.from(V5)
    t2[0x30] = 2
    expect(thrown(() => parseTdxQuote(t2))).toMatchObject({ code: 'ATTESTATION_MALFORMED', details: { field: 'bodySize', bodySize: 648 } })
  })

  it('certification data type other than 6', () => {
    const bad = Uint8Array.from(V4)
    bad[0x2fc] = 5
    expect(thrown(() => parseTdxQuote(bad))).toMatchObject({ code: 'ATTESTATION_MALFORMED', details: { field: 'certDataType', certDataType: 5 } })
  })

  it('a signed-data length that disagrees with its contents', () => {
    const bad = Uint8Array.from(V4)
    new DataView(bad.buffer).setUint32(0x278, 4300, true)
    expect(thrown(() => parseTdxQuote(bad))).toMatchObject({ code: 'ATTESTATION_MALFORMED', details: { field: 'signedData', extra: 1 } })
  })

  it('a v5 quote with a TDX 1.0 body parses (body type 2, 584 bytes)', () => {
    const header = Uint8Array.from(V4.subarray(0, 0x30))
    header[0] = 5
    const v5of4 = concat(header, u16(2), u32(584), V4.subarray(0x30))
    const q = parseTdxQuote(v5of4)
    expect(q.bodyType).toBe(2)
    expect(q.body.teeTcbSvn2).toBeUndefined()
    expect(toHex(q.body.mrTd)).toBe(toHex(parseTdxQuote(V4).body.mrTd))
    // The signed region now includes the body descriptor, so the old signature fails.
    expect(codes(verifyTdx(q, { at: AT }))).toEqual(['TDX_QUOTE_SIGNATURE_INVALID'])
  })
})
