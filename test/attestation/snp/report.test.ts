import { describe, it, expect } from 'vitest'
import {
  decodePolicy,
  decodeSignerInfo,
  decodeTcb,
  parseSnpReport,
  productFromCpuid,
  productFromName,
  SNP_REPORT_BYTES,
  SNP_REPORT_LAYOUT,
} from '../../../src/attestation/snp/report.js'
import { ParseError } from '../../../src/attestation/errors.js'
import { toHex } from '../../../src/attestation/encoding.js'
import { thrown } from '../../support.js'
import { vector } from '../vectors.js'

describe('SNP_REPORT_LAYOUT', () => {
  it('covers 0x000-0x4A0 exactly once, in order', () => {
    let next = 0
    for (const row of SNP_REPORT_LAYOUT) {
      expect(row.offset, row.field).toBe(next)
      next = row.offset + row.size
    }
    expect(next).toBe(SNP_REPORT_BYTES)
  })

  it('places the fields the reference names at their offsets', () => {
    const at = Object.fromEntries(SNP_REPORT_LAYOUT.map((r) => [r.field, [r.offset, r.size]]))
    expect(at).toMatchObject({
      reportData: [0x50, 64],
      measurement: [0x90, 48],
      hostData: [0xc0, 32],
      reportedTcb: [0x180, 8],
      chipId: [0x1a0, 64],
      committedTcb: [0x1e0, 8],
      launchTcb: [0x1f0, 8],
      signature: [0x2a0, 512],
    })
  })
})

describe('parseSnpReport on the vectors', () => {
  const cases = [
    {
      file: 'snp/attestation.bin',
      policy: 0xb0000n,
      reportData: '0102030405' + '00'.repeat(59),
      measurement: 'b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01',
      chipId:
        '3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d',
      reportId: '8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a',
      tcb: 0x4405000000000002n,
      spl: { bootloader: 2, tee: 0, snp: 5, microcode: 68 },
      fw: [1, 49, 3],
    },
    {
      file: 'snp/report_milan.bin',
      policy: 0x30000n,
      reportData:
        'd447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd',
      measurement: '7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f',
      chipId:
        'd49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6',
      reportId: '92b3b47d59f0a2a10a74c5678868a80238cf593c01a82f3cffb878e904c28d5b',
      tcb: 0x7308000000000003n,
      spl: { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
      fw: [1, 52, 4],
    },
  ]

  it.each(cases)('$file', (c) => {
    const r = parseSnpReport(vector(c.file))
    expect(r.version).toBe(2)
    expect(r.guestSvn).toBe(0)
    expect(r.vmpl).toBe(0)
    expect(r.signatureAlgo).toBe(1)
    expect(r.platformInfo).toBe(1n)
    expect(r.signerInfo).toBe(0)
    expect(r.policy).toBe(c.policy)
    expect(toHex(r.reportData)).toBe(c.reportData)
    expect(toHex(r.measurement)).toBe(c.measurement)
    expect(toHex(r.hostData)).toBe('00'.repeat(32))
    expect(toHex(r.idKeyDigest)).toBe('00'.repeat(48))
    expect(toHex(r.authorKeyDigest)).toBe('00'.repeat(48))
    expect(toHex(r.reportIdMa)).toBe('ff'.repeat(32))
    expect(toHex(r.chipId)).toBe(c.chipId)
    expect(toHex(r.reportId)).toBe(c.reportId)
    for (const t of [r.reportedTcb, r.currentTcb, r.committedTcb, r.launchTcb]) expect(t).toBe(c.tcb)
    expect(decodeTcb(r.reportedTcb, 'Milan')).toEqual({ raw: c.tcb, ...c.spl })
    expect([r.currentMajor, r.currentMinor, r.currentBuild]).toEqual(c.fw)
    expect([r.committedMajor, r.committedMinor, r.committedBuild]).toEqual(c.fw)
    expect(r.signedBytes.byteLength).toBe(0x2a0)
    expect(r.signatureR.byteLength).toBe(72)
    expect(productFromCpuid(r)).toBeUndefined()
  })

  it('reads from a Buffer that is a window into a larger slab', () => {
    const slab = Buffer.alloc(SNP_REPORT_BYTES + 300, 0xaa)
    slab.set(vector('snp/report_milan.bin'), 100)
    const r = parseSnpReport(slab.subarray(100, 100 + SNP_REPORT_BYTES))
    expect(r.reportedTcb).toBe(0x7308000000000003n)
  })
})

describe('parseSnpReport rejects', () => {
  const good = vector('snp/attestation.bin')

  it('every truncation with our ParseError, never RangeError', () => {
    for (let n = 0; n < good.byteLength; n++) {
      const err = thrown(() => parseSnpReport(good.subarray(0, n)))
      expect(err, `cut at ${n}`).toBeInstanceOf(ParseError)
    }
  })

  it.each([
    [0, 'version', 0, 4, 0],
    [2, 'version', 0, 4, 2],
    [0x50, 'reportData', 0x50, 64, 0],
    [0x60, 'reportData', 0x50, 64, 16],
    [0x2a0 + 10, 'signature', 0x2a0, 512, 10],
    [0x4a0 - 1, 'signature', 0x2a0, 512, 511],
  ])('cut to %i bytes: %s at offset %i', (n, field, offset, need, have) => {
    expect(thrown(() => parseSnpReport(good.subarray(0, n)))).toMatchObject({ code: 'ATTESTATION_TRUNCATED', field, offset, need, have })
  })

  it.each([0, 1, 6, 0x01000002])('version %i', (version) => {
    const bad = Uint8Array.from(good)
    new DataView(bad.buffer).setUint32(0, version, true)
    expect(thrown(() => parseSnpReport(bad))).toMatchObject({ code: 'ATTESTATION_UNSUPPORTED_VERSION', details: { tee: 'snp', field: 'version', version } })
  })

  it('trailing bytes', () => {
    const long = new Uint8Array(SNP_REPORT_BYTES + 1)
    long.set(good)
    expect(thrown(() => parseSnpReport(long))).toMatchObject({ code: 'ATTESTATION_MALFORMED', details: { field: 'report', length: SNP_REPORT_BYTES + 1 } })
  })
})

describe('decoders', () => {
  it('decodes Turin TCB with FMC first', () => {
    // bytes: fmc 1, bl 2, tee 3, snp 4, ..., ucode 5
    expect(decodeTcb(0x0500000004030201n, 'Turin')).toEqual({ raw: 0x0500000004030201n, fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 5 })
    expect(decodeTcb(0x0500000004030201n, 'Genoa')).toMatchObject({ bootloader: 1, tee: 2, snp: 0, microcode: 5 })
  })

  it('decodes policy and signer-info bits', () => {
    expect(decodePolicy(0xb0000n)).toMatchObject({ smt: true, debug: true, migrateMa: false, abiMajor: 0 })
    expect(decodePolicy(0x31f05n)).toMatchObject({ abiMajor: 0x1f, abiMinor: 5, debug: false, singleSocket: false })
    expect(decodeSignerInfo(0b00111)).toEqual({ raw: 7, authorKeyEn: true, maskChipKey: true, signingKey: 'vlek' })
    expect(decodeSignerInfo(7 << 2).signingKey).toBe('none')
    expect(decodeSignerInfo(2 << 2).signingKey).toBe('reserved')
  })

  it('maps CPUID and names to products', () => {
    expect(productFromCpuid({ version: 3, cpuidFamId: 0x19, cpuidModId: 0x01 })).toBe('Milan')
    expect(productFromCpuid({ version: 3, cpuidFamId: 0x19, cpuidModId: 0x11 })).toBe('Genoa')
    expect(productFromCpuid({ version: 5, cpuidFamId: 0x1a, cpuidModId: 0x02 })).toBe('Turin')
    expect(productFromCpuid({ version: 2, cpuidFamId: 0x19, cpuidModId: 0x01 })).toBeUndefined()
    expect(productFromName('Milan-B0')).toBe('Milan')
    expect(productFromName('SEV-Genoa')).toBe('Genoa')
    expect(productFromName('SEV-VLEK-Turin')).toBe('Turin')
    expect(productFromName('SEV-Rome')).toBeUndefined()
  })
})
