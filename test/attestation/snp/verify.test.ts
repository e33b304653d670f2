import { describe, it, expect, beforeAll } from 'vitest'
import { X509Certificate } from 'node:crypto'
import { verifySnp, type SnpVerifyOptions } from '../../../src/attestation/snp/verify.js'
import { parseSnpReport } from '../../../src/attestation/snp/report.js'
import { amdChains, amdRoots } from '../../../src/attestation/snp/roots.js'
import { buildSnpCertTable, parseSnpCertTable } from '../../../src/attestation/snp/cert-table.js'
import { parseCertificates, toHex } from '../../../src/attestation/encoding.js'
import { AMD_OID } from '../../../src/attestation/snp/vcek.js'
import type { VerifyReasonCode } from '../../../src/attestation/verifier.js'
import { thrown } from '../../support.js'
import { AT, flip, vector } from '../vectors.js'
import { derInt, resignSnp, simChain, type SimChain } from '../sim-chain.js'

const ATTESTATION = vector('snp/attestation.bin')
const VCEK = vector('snp/vcek.testcer')
const MILAN_REPORT = vector('snp/report_milan.bin')
const MILAN_VCEK = vector('snp/vcek_milan.der')
const MILAN_CHAIN = vector('snp/cert_chain_milan')
const GENOA_CHAIN = vector('snp/ask_ark_genoa.pem')
const TURIN_CHAIN = vector('snp/ask_ark_turin_vcek.pem')

const codes = (r: { reasons: readonly { code: VerifyReasonCode }[] }): VerifyReasonCode[] => r.reasons.map((x) => x.code)

describe('pinned AMD roots', () => {
  it.each([
    ['Milan', 'SEV-Milan', 'ARK-Milan', '2045-10-22'],
    ['Genoa', 'SEV-Genoa', 'ARK-Genoa', '2047-01-26'],
    ['Turin', 'SEV-Turin', 'ARK-Turin', '2048-05-15'],
  ] as const)('%s: ARK self-signed, ASK signed by ARK, both CAs', (product, askCn, arkCn, arkUntil) => {
    const { ask, ark } = amdChains()[product]
    expect(ask.subject).toContain(`CN=${askCn}`)
    expect(ark.subject).toContain(`CN=${arkCn}`)
    expect(ark.verify(ark.publicKey)).toBe(true)
    expect(ask.verify(ark.publicKey)).toBe(true)
    expect(ask.ca && ark.ca).toBe(true)
    expect(new Date(ark.validTo).toISOString().slice(0, 10)).toBe(arkUntil)
  })

  it('equal the vector files byte for byte', () => {
    const pinned = amdChains()
    for (const [product, file] of [['Milan', 'snp/ask_ark_milan.pem'], ['Genoa', 'snp/ask_ark_genoa.pem'], ['Turin', 'snp/ask_ark_turin_vcek.pem']] as const) {
      const [ask, ark] = parseCertificates(vector(file))
      expect(ask!.raw.equals(pinned[product].ask.raw)).toBe(true)
      expect(ark!.raw.equals(pinned[product].ark.raw)).toBe(true)
    }
  })
})

describe('verifySnp on the vectors', () => {
  it('attestation.bin + vcek.testcer: evidence valid; rejected only because DEBUG is allowed', () => {
    const r = verifySnp(ATTESTATION, { at: AT, vcek: VCEK })
    expect(r.tee).toBe('snp')
    expect(r.verified).toBe(false)
    expect(codes(r)).toEqual(['SNP_DEBUG_ALLOWED'])
    const ok = verifySnp(ATTESTATION, { at: AT, vcek: VCEK, policy: { allowDebug: true } })
    expect(ok).toMatchObject({ tee: 'snp', verified: true, reasons: [] })
  })

  it('attestation.bin claims', () => {
    const { claims: c } = verifySnp(ATTESTATION, { at: AT, vcek: VCEK, chain: vector('snp/ask_ark_milan.pem'), policy: { allowDebug: true } })
    expect(c.version).toBe(2)
    expect(c.product).toBe('Milan')
    expect(c.policy).toMatchObject({ raw: 0xb0000n, smt: true, debug: true })
    expect(toHex(c.reportData)).toBe('0102030405' + '00'.repeat(59))
    expect(toHex(c.measurement)).toBe('b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01')
    expect(toHex(c.hostData)).toBe('00'.repeat(32))
    expect(toHex(c.chipId).slice(0, 32)).toBe('3ac3fe21e13fb0990eb28a802e3fb6a2')
    expect(c.reportedTcb).toEqual({ raw: 0x4405000000000002n, bootloader: 2, tee: 0, snp: 5, microcode: 68 })
    expect(c.currentFirmware).toEqual({ major: 1, minor: 49, build: 3 })
    expect(c.signerInfo).toEqual({ raw: 0, authorKeyEn: false, maskChipKey: false, signingKey: 'vcek' })
    expect(c.platformInfo).toBe(1n)
    expect(c.cpuid).toBeUndefined()
    expect(c.endorsement).toMatchObject({
      kind: 'vcek',
      subject: 'SEV-VCEK',
      issuer: 'SEV-Milan',
      productName: 'Milan-B0',
      serialNumber: '0',
      notBefore: new Date('2022-09-24T00:55:28Z'),
      notAfter: new Date('2029-09-24T00:55:28Z'),
      chain: {
        ask: '67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b',
        ark: '69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd',
      },
    })
  })

  it('report_milan.bin + vcek_milan.der + cert_chain_milan: verified', () => {
    const r = verifySnp(MILAN_REPORT, { at: AT, vcek: MILAN_VCEK, chain: MILAN_CHAIN })
    expect(r).toMatchObject({ tee: 'snp', verified: true, reasons: [] })
    expect(r.claims.reportedTcb).toEqual({ raw: 0x7308000000000003n, bootloader: 3, tee: 0, snp: 8, microcode: 115 })
    expect(r.claims.currentFirmware).toEqual({ major: 1, minor: 52, build: 4 })
    expect(r.claims.policy.raw).toBe(0x30000n)
    expect(r.claims.endorsement?.notAfter.toISOString().slice(0, 10)).toBe('2030-04-03')
    expect(r.claims.endorsement?.notBefore.toISOString().slice(0, 10)).toBe('2023-04-03')
  })

  it('accepts a parsed report as well as bytes', () => {
    expect(verifySnp(parseSnpReport(MILAN_REPORT), { at: AT, vcek: MILAN_VCEK }).verified).toBe(true)
  })

  it('takes the VCEK and chain from an extended report certificate table', () => {
    const [ask, ark] = parseCertificates(MILAN_CHAIN)
    const table = buildSnpCertTable({ vcek: MILAN_VCEK, ask: new Uint8Array(ask!.raw), ark: new Uint8Array(ark!.raw) })
    const parsed = parseSnpCertTable(table)
    expect(parsed.entries.map((e) => e.guid)).toEqual(['63da758de6644564adc5f4b93be8accd', '4ab7b379bbac4fe4a02f05aef327c782', 'c0b406a4a803495297433fb6014cd0ae'])
    expect(verifySnp(MILAN_REPORT, { at: AT, certTable: table })).toMatchObject({ verified: true, reasons: [] })
  })
})

describe('verifySnp: README negative cases', () => {
  it('MEASUREMENT[0] flipped: report signature invalid', () => {
    const r = verifySnp(flip(ATTESTATION, 0x090), { at: AT, vcek: VCEK, policy: { allowDebug: true } })
    expect(codes(r)).toEqual(['SNP_REPORT_SIGNATURE_INVALID'])
  })

  it.each([
    ['R', 0x2a0],
    ['R high byte', 0x2a0 + 47],
    ['S', 0x2a0 + 0x48],
  ])('signature byte flipped (%s at %i): report signature invalid', (_n, offset) => {
    const r = verifySnp(flip(ATTESTATION, offset), { at: AT, vcek: VCEK, policy: { allowDebug: true } })
    expect(codes(r)).toEqual(['SNP_REPORT_SIGNATURE_INVALID'])
  })

  it('R padding byte 0x2D0 set: malformed even though the low 48 bytes still verify', () => {
    const bad = Uint8Array.from(ATTESTATION)
    bad[0x2d0] = 1
    const r = verifySnp(bad, { at: AT, vcek: VCEK, policy: { allowDebug: true } })
    expect(r.verified).toBe(false)
    expect(r.reasons).toEqual([expect.objectContaining({ code: 'SNP_SIGNATURE_PADDING_NONZERO', details: { field: 'signature.r' } })])
  })

  it.each([
    [0x2a0 + 0x48 + 50, 'signature.s'],
    [0x330, 'signature.reserved'],
    [0x49f, 'signature.reserved'],
  ])('padding byte 0x%s set: %s', (offset, field) => {
    const r = verifySnp(flip(ATTESTATION, offset), { at: AT, vcek: VCEK, policy: { allowDebug: true } })
    expect(r.reasons).toEqual([expect.objectContaining({ code: 'SNP_SIGNATURE_PADDING_NONZERO', details: { field } })])
  })

  it('REPORT_DATA[0] flipped in report_milan.bin: report signature invalid', () => {
    const r = verifySnp(flip(MILAN_REPORT, 0x050), { at: AT, vcek: MILAN_VCEK })
    expect(codes(r)).toEqual(['SNP_REPORT_SIGNATURE_INVALID'])
  })

  it('a VCEK for another chip: signature invalid, hwID != CHIP_ID, TCB differs', () => {
    const r = verifySnp(MILAN_REPORT, { at: AT, vcek: VCEK })
    expect(codes(r)).toEqual(['SNP_TCB_MISMATCH', 'SNP_TCB_MISMATCH', 'SNP_TCB_MISMATCH', 'SNP_CHIP_ID_MISMATCH', 'SNP_REPORT_SIGNATURE_INVALID'])
    expect(r.reasons[3]?.details).toMatchObject({ hwId: expect.stringMatching(/^3ac3fe21/), chipId: expect.stringMatching(/^d49554ec/) })
    expect(r.reasons.slice(0, 3).map((x) => x.details)).toEqual([
      { component: 'bootloader', report: 3, endorsement: 2 },
      { component: 'snp', report: 8, endorsement: 5 },
      { component: 'microcode', report: 115, endorsement: 68 },
    ])
    const other = verifySnp(ATTESTATION, { at: AT, vcek: MILAN_VCEK, policy: { allowDebug: true } })
    expect(codes(other)).toContain('SNP_CHIP_ID_MISMATCH')
    expect(codes(other)).toContain('SNP_REPORT_SIGNATURE_INVALID')
  })

  it('chain read in the wrong order (first = ARK): "ARK" is not self-signed', () => {
    const [ask, ark] = parseCertificates(MILAN_CHAIN)
    const r = verifySnp(MILAN_REPORT, { at: AT, vcek: MILAN_VCEK, chain: [ark!, ask!] })
    expect(codes(r)).toEqual(['SNP_ARK_NOT_TRUSTED', 'SNP_ARK_SIGNATURE_INVALID', 'SNP_ASK_SIGNATURE_INVALID', 'SNP_VCEK_SIGNATURE_INVALID'])
  })

  it('swapped ASK: pinned ARK-Milan with SEV-Genoa as ASK', () => {
    const [genoaAsk] = parseCertificates(GENOA_CHAIN)
    const [, milanArk] = parseCertificates(MILAN_CHAIN)
    const r = verifySnp(MILAN_REPORT, { at: AT, vcek: MILAN_VCEK, chain: [genoaAsk!, milanArk!] })
    expect(codes(r)).toEqual(['SNP_PRODUCT_MISMATCH', 'SNP_ASK_SIGNATURE_INVALID', 'SNP_VCEK_SIGNATURE_INVALID'])
  })

  it('last byte of the ASK signature flipped: ASK not signed by ARK', () => {
    const [ask, ark] = parseCertificates(MILAN_CHAIN)
    const raw = new Uint8Array(ask!.raw)
    const tampered = new X509Certificate(Buffer.from(flip(raw, raw.byteLength - 1)))
    const r = verifySnp(MILAN_REPORT, { at: AT, vcek: MILAN_VCEK, chain: [tampered, ark!] })
    expect(codes(r)).toEqual(['SNP_ASK_SIGNATURE_INVALID'])
  })

  it.each([
    ['Genoa', GENOA_CHAIN],
    ['Turin', TURIN_CHAIN],
  ])('wrong product root: a Milan VCEK under SEV-%s', (product, chain) => {
    const r = verifySnp(ATTESTATION, { at: AT, vcek: VCEK, chain, policy: { allowDebug: true } })
    expect(codes(r)).toEqual(['SNP_PRODUCT_MISMATCH', 'SNP_VCEK_SIGNATURE_INVALID'])
    expect(r.reasons[0]?.details).toMatchObject({ vcek: 'Milan', ask: product })
  })

  it('expired chain at a pinned time: the VCEK ends 2029-09-24', () => {
    const r = verifySnp(ATTESTATION, { at: new Date('2029-10-01T00:00:00Z'), vcek: VCEK, policy: { allowDebug: true } })
    expect(r.reasons).toEqual([expect.objectContaining({ code: 'CERT_EXPIRED', details: expect.objectContaining({ cert: 'vcek', notAfter: '2029-09-24T00:55:28.000Z' }) })])
  })

  it('not yet valid: before the VCEK was issued', () => {
    const r = verifySnp(ATTESTATION, { at: new Date('2021-01-01T00:00:00Z'), vcek: VCEK, policy: { allowDebug: true } })
    expect(r.reasons).toEqual([expect.objectContaining({ code: 'CERT_NOT_YET_VALID', details: expect.objectContaining({ cert: 'vcek' }) })])
  })

  it('after the ARK expires every certificate is reported', () => {
    const r = verifySnp(ATTESTATION, { at: new Date('2046-01-01T00:00:00Z'), vcek: VCEK, policy: { allowDebug: true } })
    expect(r.reasons.map((x) => [x.code, x.details['cert']])).toEqual([
      ['CERT_EXPIRED', 'ark'],
      ['CERT_EXPIRED', 'ask'],
      ['CERT_EXPIRED', 'vcek'],
    ])
  })

  it('no VCEK and no certificate table', () => {
    const r = verifySnp(MILAN_REPORT, { at: AT })
    expect(codes(r)).toEqual(['SNP_ENDORSEMENT_MISSING'])
    expect(r.claims.endorsement).toBeUndefined()
    expect(toHex(r.claims.measurement)).toMatch(/^7a1e5c26/)
  })

  it('a chain that is not two certificates is unusable input', () => {
    expect(thrown(() => verifySnp(MILAN_REPORT, { at: AT, vcek: MILAN_VCEK, chain: [MILAN_VCEK] }))).toMatchObject({
      code: 'ATTESTATION_BAD_INPUT',
      details: { field: 'chain', count: 1 },
    })
  })

  it('truncated input throws the parser error', () => {
    expect(thrown(() => verifySnp(MILAN_REPORT.subarray(0, 100), { at: AT, vcek: MILAN_VCEK }))).toMatchObject({ code: 'ATTESTATION_TRUNCATED', field: 'reportData' })
  })
})

describe('verifySnp policy', () => {
  const base: SnpVerifyOptions = { at: AT, vcek: MILAN_VCEK }
  const measurement = parseSnpReport(MILAN_REPORT).measurement

  it.each<[string, SnpVerifyOptions['policy'], VerifyReasonCode[]]>([
    ['minimum TCB met', { minimumTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 } }, []],
    ['minimum SNP SPL above', { minimumTcb: { snp: 9 } }, ['SNP_TCB_BELOW_MINIMUM']],
    ['minimum microcode above', { minimumTcb: { microcode: 200, bootloader: 4 } }, ['SNP_TCB_BELOW_MINIMUM', 'SNP_TCB_BELOW_MINIMUM']],
    ['FMC minimum on a non-Turin report', { minimumTcb: { fmc: 1 } }, ['SNP_TCB_BELOW_MINIMUM']],
    ['minimum ABI met', { minimumAbi: { major: 1, minor: 52 } }, []],
    ['minimum ABI above (current and committed)', { minimumAbi: { major: 1, minor: 53 } }, ['SNP_ABI_BELOW_MINIMUM', 'SNP_ABI_BELOW_MINIMUM']],
    ['minimum ABI major above', { minimumAbi: { major: 2, minor: 0 } }, ['SNP_ABI_BELOW_MINIMUM', 'SNP_ABI_BELOW_MINIMUM']],
    ['launch TCB met', { minimumLaunchTcb: { bootloader: 3, snp: 8, microcode: 115 } }, []],
    ['launch SNP SPL above', { minimumLaunchTcb: { snp: 9 } }, ['SNP_LAUNCH_TCB_BELOW_MINIMUM']],
    ['SMT allowed by the report, forbidden by the policy', { guestPolicy: { allowSmt: false } }, ['SNP_GUEST_POLICY_MISMATCH']],
    ['single socket required, not set', { guestPolicy: { requireSingleSocket: true, requireMemAes256Xts: true } }, ['SNP_GUEST_POLICY_MISMATCH', 'SNP_GUEST_POLICY_MISMATCH']],
    ['guest ABI minimum 0.0 met', { guestPolicy: { minimumAbi: { major: 0, minor: 0 } } }, []],
    ['VMPL 0 expected', { vmpl: 0 }, []],
    ['VMPL 1 expected', { vmpl: 1 }, ['SNP_VMPL_MISMATCH']],
    ['measurement allowed', { measurements: [new Uint8Array(48), measurement] }, []],
    ['measurement not allowed', { measurements: [new Uint8Array(48)] }, ['SNP_MEASUREMENT_NOT_ALLOWED']],
    ['host data allowed', { hostData: [new Uint8Array(32)] }, []],
    ['host data not allowed', { hostData: [new Uint8Array(32).fill(1)] }, ['SNP_HOST_DATA_NOT_ALLOWED']],
    ['product Milan required', { product: 'Milan' }, []],
    ['product Genoa required', { product: 'Genoa' }, ['SNP_PRODUCT_MISMATCH']],
  ])('%s', (_name, policy, expected) => {
    expect(codes(verifySnp(MILAN_REPORT, { ...base, policy }))).toEqual(expected)
  })

  it('report data binding: exact, zero-padded, mismatch', () => {
    const rd = parseSnpReport(MILAN_REPORT).reportData
    expect(verifySnp(MILAN_REPORT, { ...base, policy: { reportData: rd } }).verified).toBe(true)
    const att = verifySnp(ATTESTATION, { at: AT, vcek: VCEK, policy: { allowDebug: true, reportData: Uint8Array.from([1, 2, 3, 4, 5]) } })
    expect(att.verified).toBe(true)
    const bad = verifySnp(MILAN_REPORT, { ...base, policy: { reportData: flip(rd, 63) } })
    expect(bad.reasons).toEqual([expect.objectContaining({ code: 'REPORT_DATA_MISMATCH', details: { actual: toHex(rd), expected: toHex(flip(rd, 63)) } })])
    const tooLong = verifySnp(MILAN_REPORT, { ...base, policy: { reportData: new Uint8Array(65) } })
    expect(codes(tooLong)).toEqual(['REPORT_DATA_MISMATCH'])
  })
})

// A locally generated chain lets a test change one report field, re-sign, and
// see exactly the one reason that field should cause.
describe('verifySnp with a simulated chain', () => {
  let sim: SimChain
  let simReport: Uint8Array
  const chipId = parseSnpReport(ATTESTATION).chipId
  const milanSpl = { productName: 'Milan-B0', bl: 2, tee: 0, snp: 5, ucode: 68, hwId: chipId }

  beforeAll(async () => {
    sim = await simChain('Milan', milanSpl)
    simReport = resignSnp(ATTESTATION, sim.vcekKey)
  })
  const opts = (): SnpVerifyOptions => ({ at: AT, vcek: sim.vcek, chain: [sim.ask, sim.ark], roots: { ark: [sim.ark] }, policy: { allowDebug: true } })
  const mutated = (edit: (v: DataView, b: Uint8Array) => void): Uint8Array => {
    const b = Uint8Array.from(simReport)
    edit(new DataView(b.buffer), b)
    return resignSnp(b, sim.vcekKey)
  }

  it('is accepted only with its root trusted, and then as tee "simulated"', () => {
    const ok = verifySnp(simReport, opts())
    expect(ok).toMatchObject({ tee: 'simulated', verified: true, reasons: [] })
    const untrusted = verifySnp(simReport, { ...opts(), roots: undefined })
    expect(untrusted.tee).toBe('simulated')
    expect(codes(untrusted)).toEqual(['SNP_ARK_NOT_TRUSTED'])
    const both = verifySnp(simReport, { ...opts(), roots: { ark: [...amdRoots(), sim.ark] } })
    expect(both).toMatchObject({ tee: 'simulated', verified: true })
  })

  it('MIGRATE_MA (policy bit 18) is refused unless a migration agent is allowed', () => {
    const ma = mutated((v) => v.setBigUint64(0x08, v.getBigUint64(0x08, true) | (1n << 18n), true))
    expect(codes(verifySnp(ma, opts()))).toEqual(['SNP_MIGRATE_MA_ALLOWED'])
    expect(codes(verifySnp(ma, { ...opts(), policy: { allowDebug: true, guestPolicy: { allowMigrationAgent: true } } }))).toEqual([])
  })

  it('a trusted simulated root does not make AMD evidence "simulated"', () => {
    const r = verifySnp(MILAN_REPORT, { at: AT, vcek: MILAN_VCEK, roots: { ark: [...amdRoots(), sim.ark] } })
    expect(r).toMatchObject({ tee: 'snp', verified: true })
    const onlySim = verifySnp(MILAN_REPORT, { at: AT, vcek: MILAN_VCEK, roots: { ark: [sim.ark] } })
    expect(codes(onlySim)).toEqual(['SNP_ARK_NOT_TRUSTED'])
  })

  it.each<[string, (v: DataView, b: Uint8Array) => void, VerifyReasonCode[], Record<string, unknown>?]>([
    ['signature algorithm 2', (v) => v.setUint32(0x34, 2, true), ['SNP_SIGNATURE_ALGO_UNSUPPORTED'], { signatureAlgo: 2 }],
    ['reserved 0x04C', (_v, b) => (b[0x4c] = 1), ['SNP_RESERVED_NONZERO'], { field: 'reserved04c', value: '01000000' }],
    ['reserved 0x1A0 - 1', (_v, b) => (b[0x19f] = 1), ['SNP_RESERVED_NONZERO'], { field: 'reserved18b' }],
    ['CPUID bytes in a v2 report', (_v, b) => (b[0x188] = 0x19), ['SNP_RESERVED_NONZERO'], { field: 'cpuid' }],
    ['mitigation vector before v5', (_v, b) => (b[0x1f8] = 1), ['SNP_RESERVED_NONZERO'], { field: 'mitVectors' }],
    ['reserved 0x1EB', (_v, b) => (b[0x1eb] = 1), ['SNP_RESERVED_NONZERO'], { field: 'reserved1eb' }],
    ['reserved 0x29F', (_v, b) => (b[0x29f] = 1), ['SNP_RESERVED_NONZERO'], { field: 'reserved208' }],
    ['SIGNER_INFO bit 5', (v) => v.setUint32(0x48, 1 << 5, true), ['SNP_RESERVED_NONZERO'], { field: 'signerInfo' }],
    ['policy bit 17 clear', (_v, b) => (b[0x0a] = b[0x0a]! & ~0x02), ['SNP_POLICY_MALFORMED']],
    ['policy bit 40 set', (_v, b) => (b[0x0d] = 1), ['SNP_POLICY_MALFORMED']],
    ['signing key "none"', (v) => v.setUint32(0x48, 7 << 2, true), ['SNP_SIGNING_KEY_UNSUPPORTED', 'SNP_ENDORSEMENT_KIND_MISMATCH']],
    ['signing key VLEK with a VCEK certificate', (v) => v.setUint32(0x48, 1 << 2, true), ['SNP_ENDORSEMENT_KIND_MISMATCH'], { signingKey: 'vlek', subject: 'SEV-VCEK' }],
  ])('%s', (_name, edit, expected, details) => {
    const r = verifySnp(mutated(edit), opts())
    expect(codes(r)).toEqual(expected)
    if (details !== undefined) expect(r.reasons[0]?.details).toMatchObject(details)
  })

  it('debug policy bit with debug forbidden', () => {
    expect(codes(verifySnp(simReport, { ...opts(), policy: {} }))).toEqual(['SNP_DEBUG_ALLOWED'])
    const noDebug = mutated((_v, b) => (b[0x0a] = b[0x0a]! & ~0x08))
    expect(verifySnp(noDebug, { ...opts(), policy: {} }).verified).toBe(true)
  })

  it('a v5 report: CPUID names the product, mitigation vectors become claims', () => {
    const r = verifySnp(
      mutated((v, b) => {
        v.setUint32(0, 5, true)
        b.set([0x19, 0x01, 0x01], 0x188)
        v.setBigUint64(0x1f8, 3n, true)
      }),
      opts(),
    )
    expect(r).toMatchObject({ verified: true, claims: { version: 5, product: 'Milan', cpuid: { family: 0x19, model: 1, stepping: 1 }, launchMitVector: 3n, currentMitVector: 0n } })
  })

  it('a v3 report whose CPUID says Genoa under a Milan VCEK', () => {
    const r = verifySnp(mutated((v, b) => (v.setUint32(0, 3, true), b.set([0x19, 0x11, 0x00], 0x188))), opts())
    expect(codes(r)).toEqual(['SNP_PRODUCT_MISMATCH'])
    expect(r.reasons[0]?.details).toMatchObject({ report: 'Genoa', vcek: 'Milan', ask: 'Milan' })
  })

  it('VCEK without hwID or SPL extensions', async () => {
    const bare = await simChain('Milan', { productName: 'Milan-B0' })
    const r = verifySnp(resignSnp(ATTESTATION, bare.vcekKey), { ...opts(), vcek: bare.vcek, chain: [bare.ask, bare.ark], roots: { ark: [bare.ark] } })
    expect(r.reasons.map((x) => [x.code, x.details['extension']])).toEqual([
      ['SNP_VCEK_EXTENSION_MISSING', 'blSpl'],
      ['SNP_VCEK_EXTENSION_MISSING', 'teeSpl'],
      ['SNP_VCEK_EXTENSION_MISSING', 'snpSpl'],
      ['SNP_VCEK_EXTENSION_MISSING', 'ucodeSpl'],
      ['SNP_VCEK_EXTENSION_MISSING', 'hwId'],
    ])
  })

  it('VCEK hwID wrapped in an OCTET STRING is accepted', async () => {
    const wrapped = await simChain('Milan', { ...milanSpl, hwId: Uint8Array.from([0x04, 64, ...chipId]) })
    const r = verifySnp(resignSnp(ATTESTATION, wrapped.vcekKey), { ...opts(), vcek: wrapped.vcek, chain: [wrapped.ask, wrapped.ark], roots: { ark: [wrapped.ark] } })
    expect(r.verified).toBe(true)
  })

  it('VCEK with a malformed SPL extension or a P-256 key', async () => {
    const badExt = await simChain('Milan', { ...milanSpl, raw: { [AMD_OID.blSpl]: Uint8Array.from([0x04, 0x01, 0x02]) } })
    const r1 = verifySnp(resignSnp(ATTESTATION, badExt.vcekKey), { ...opts(), vcek: badExt.vcek, chain: [badExt.ask, badExt.ark], roots: { ark: [badExt.ark] } })
    expect(r1.reasons).toEqual([expect.objectContaining({ code: 'SNP_ENDORSEMENT_MALFORMED', details: { field: 'blSPL' } })])
    const p256 = await simChain('Milan', { ...milanSpl, curve: 'P-256' })
    const r2 = verifySnp(ATTESTATION, { ...opts(), vcek: p256.vcek, chain: [p256.ask, p256.ark], roots: { ark: [p256.ark] } })
    expect(r2.reasons).toEqual([expect.objectContaining({ code: 'SNP_ENDORSEMENT_MALFORMED', details: expect.objectContaining({ field: 'publicKey' }) })])
  })

  it('VCEK named neither SEV-VCEK nor SEV-VLEK', async () => {
    const odd = await simChain('Milan', { ...milanSpl, subjectCn: 'SEV-OTHER' })
    const r = verifySnp(resignSnp(ATTESTATION, odd.vcekKey), { ...opts(), vcek: odd.vcek, chain: [odd.ask, odd.ark], roots: { ark: [odd.ark] } })
    expect(codes(r)).toEqual(['SNP_ENDORSEMENT_KIND_MISMATCH'])
  })

  it('no product anywhere and no chain: cannot pick a pinned chain', async () => {
    const anon = await simChain('Milan', { ...milanSpl, productName: undefined })
    const r = verifySnp(resignSnp(ATTESTATION, anon.vcekKey), { at: AT, vcek: anon.vcek, policy: { allowDebug: true } })
    expect(codes(r)).toEqual(['SNP_PRODUCT_UNKNOWN'])
  })

  it('a VLEK without its ASVK chain', async () => {
    const vlek = await simChain('Milan', { subjectCn: 'SEV-VLEK', productName: 'Milan-B0', bl: 2, tee: 0, snp: 5, ucode: 68 })
    const report = Uint8Array.from(ATTESTATION)
    new DataView(report.buffer).setUint32(0x48, 1 << 2, true)
    const signed = resignSnp(report, vlek.vcekKey)
    expect(codes(verifySnp(signed, { at: AT, vcek: vlek.vcek, policy: { allowDebug: true } }))).toEqual(['SNP_CHAIN_MISSING'])
    const ok = verifySnp(signed, { at: AT, vcek: vlek.vcek, chain: [vlek.ask, vlek.ark], roots: { ark: [vlek.ark] }, policy: { allowDebug: true } })
    expect(ok).toMatchObject({ verified: true, claims: { signerInfo: { signingKey: 'vlek' }, endorsement: { kind: 'vlek' } } })
    // A VLEK has no chip binding, and the table's VLEK entry is used for a VLEK-signed report.
    const table = buildSnpCertTable({ vlek: new Uint8Array(vlek.vcek.raw), ask: new Uint8Array(vlek.ask.raw), ark: new Uint8Array(vlek.ark.raw) })
    expect(verifySnp(signed, { at: AT, certTable: table, roots: { ark: [vlek.ark] }, policy: { allowDebug: true } }).verified).toBe(true)
  })

  it('Turin: FMC SPL and an 8-byte hwID', async () => {
    const turinChip = new Uint8Array(64)
    turinChip.set([1, 2, 3, 4, 5, 6, 7, 8])
    // Turin TCB bytes: fmc, bl, tee, snp, 0, 0, 0, ucode.
    const tcb = 0x4800000004030201n
    const turin = await simChain('Turin', { productName: 'Turin', fmc: 1, bl: 2, tee: 3, snp: 4, ucode: 0x48, hwId: turinChip.subarray(0, 8) })
    const build = (fmcInCert: Uint8Array): Uint8Array => {
      const b = Uint8Array.from(ATTESTATION)
      const v = new DataView(b.buffer)
      v.setUint32(0, 3, true)
      b.set([0x1a, 0x02, 0x00], 0x188)
      for (const off of [0x038, 0x180, 0x1e0, 0x1f0]) v.setBigUint64(off, tcb, true)
      b.set(fmcInCert, 0x1a0)
      return resignSnp(b, turin.vcekKey)
    }
    const o = { at: AT, vcek: turin.vcek, chain: [turin.ask, turin.ark], roots: { ark: [turin.ark] }, policy: { allowDebug: true } }
    const ok = verifySnp(build(turinChip), o)
    expect(ok).toMatchObject({ verified: true, claims: { product: 'Turin', reportedTcb: { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 0x48 } } })
    const otherChip = Uint8Array.from(turinChip)
    otherChip[9] = 1
    expect(codes(verifySnp(build(otherChip), o))).toEqual(['SNP_CHIP_ID_MISMATCH'])
    expect(codes(verifySnp(build(turinChip), { ...o, policy: { allowDebug: true, minimumTcb: { fmc: 2 } } }))).toEqual(['SNP_TCB_BELOW_MINIMUM'])
    const noFmc = await simChain('Turin', { productName: 'Turin', bl: 2, tee: 3, snp: 4, ucode: 0x48, hwId: turinChip.subarray(0, 8) })
    const b = build(turinChip)
    const r = verifySnp(resignSnp(b, noFmc.vcekKey), { ...o, vcek: noFmc.vcek, chain: [noFmc.ask, noFmc.ark], roots: { ark: [noFmc.ark] } })
    expect(r.reasons).toEqual([expect.objectContaining({ code: 'SNP_VCEK_EXTENSION_MISSING', details: { extension: 'fmcSpl' } })])
    const wrongFmc = await simChain('Turin', { productName: 'Turin', fmc: 9, bl: 2, tee: 3, snp: 4, ucode: 0x48, hwId: turinChip.subarray(0, 8) })
    const r2 = verifySnp(resignSnp(b, wrongFmc.vcekKey), { ...o, vcek: wrongFmc.vcek, chain: [wrongFmc.ask, wrongFmc.ark], roots: { ark: [wrongFmc.ark] } })
    expect(r2.reasons).toEqual([expect.objectContaining({ code: 'SNP_TCB_MISMATCH', details: { component: 'fmc', report: 1, endorsement: 9 } })])
  })

  it('ucode SPL >= 128 is read through its leading zero', async () => {
    expect(derInt(217)).toEqual(Uint8Array.from([0x02, 0x02, 0x00, 0xd9]))
    const hi = await simChain('Milan', { ...milanSpl, ucode: 217 })
    const b = Uint8Array.from(ATTESTATION)
    const v = new DataView(b.buffer)
    for (const off of [0x038, 0x180, 0x1e0, 0x1f0]) v.setBigUint64(off, 0xd905000000000002n, true)
    const r = verifySnp(resignSnp(b, hi.vcekKey), { ...opts(), vcek: hi.vcek, chain: [hi.ask, hi.ark], roots: { ark: [hi.ark] } })
    expect(r).toMatchObject({ verified: true, claims: { reportedTcb: { microcode: 217 } } })
  })
})

describe('parseSnpCertTable', () => {
  const table = buildSnpCertTable({ vcek: VCEK })

  it('any truncation gives our error', () => {
    for (let n = 0; n < table.byteLength; n += 5) {
      const err = thrown(() => parseSnpCertTable(table.subarray(0, n)))
      expect(err.code, `cut at ${n}`).toMatch(/^ATTESTATION_(TRUNCATED|MALFORMED|BAD_INPUT)$/)
    }
  })

  it('an entry pointing past the end', () => {
    const bad = Uint8Array.from(table)
    new DataView(bad.buffer).setUint32(16, 0xffff, true)
    expect(thrown(() => parseSnpCertTable(bad))).toMatchObject({ code: 'ATTESTATION_MALFORMED', details: { field: 'certTable[0].offset' } })
  })

  it('keeps unknown GUIDs as entries without interpreting them', () => {
    const t = buildSnpCertTable({ vcek: VCEK })
    t.set(new Uint8Array(16).fill(0x11), 0)
    const parsed = parseSnpCertTable(t)
    expect(parsed.vcek).toBeUndefined()
    expect(parsed.entries).toEqual([{ guid: '11'.repeat(16), offset: 48, length: VCEK.byteLength }])
  })
})
