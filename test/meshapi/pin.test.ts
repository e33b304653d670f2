import { randomBytes, webcrypto } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { bindReportData, toHex } from '../../src/attestation/index.js'
import { evidenceToWire, parseCoordinatorIdentity, requireMeasurementPin, verifyCoordinator, type ChallengeSeen } from '../../src/meshapi/index.js'
import { generateKeyPair } from '../../src/pki/index.js'
import { thrown } from '../support.js'
import { mrConfigIdOf, tdxTestPlatform, TEST_AT, type TdxTestPlatform } from '../coordinator/real-evidence.js'

describe('parseCoordinatorIdentity', () => {
  it.each([
    [`policy:${'AB'.repeat(32)}`, { kind: 'policy-hash', hex: 'ab'.repeat(32) }],
    ['cd'.repeat(48), { kind: 'policy-hash', hex: 'cd'.repeat(48) }],
    [`root-ca:${'0f'.repeat(32)}`, { kind: 'root-ca', sha256: '0f'.repeat(32) }],
    [`root-ca:${Array(32).fill('0F').join(':')}`, { kind: 'root-ca', sha256: '0f'.repeat(32) }],
  ])('%s', (text, want) => {
    expect(parseCoordinatorIdentity(text)).toEqual(want)
  })

  it.each(['', 'policy:abc', `root-ca:${'0f'.repeat(31)}`, `hostdata:${'ab'.repeat(32)}`, 'zz'.repeat(32)])('refuses %j', (text) => {
    expect(parseCoordinatorIdentity(text)).toBeUndefined()
  })
})

describe('requireMeasurementPin', () => {
  it('refuses a policy-hash pin without measurements for real SNP and TDX evidence', () => {
    for (const tee of ['snp', 'tdx']) {
      expect(thrown(() => requireMeasurementPin(undefined, tee))).toMatchObject({ code: 'COORDINATOR_UNTRUSTED', details: { step: 'identity', tee } })
    }
  })
  it('accepts it with measurements, and for simulated evidence', () => {
    expect(() => requireMeasurementPin(['00'.repeat(48)], 'snp')).not.toThrow()
    expect(() => requireMeasurementPin(undefined, 'simulated')).not.toThrow()
  })
})

describe('verifyCoordinator: a TDX coordinator pinned by policy hash', () => {
  const HOST = 'c1'.repeat(32)
  const MR_TD = '6b'.repeat(48)
  const rtmr = ['70', '71', '72', '73'].map((b) => Buffer.alloc(48, Number.parseInt(b, 16))) as unknown as [Uint8Array, Uint8Array, Uint8Array, Uint8Array]

  async function seen(tdx: TdxTestPlatform, tdRtmr: typeof rtmr): Promise<ChallengeSeen> {
    const kp = await generateKeyPair('P-256')
    const tlsKey = Buffer.from(await webcrypto.subtle.exportKey('spki', kp.keys.publicKey))
    const clientNonce = randomBytes(32)
    const ev = tdx.evidence(bindReportData(tlsKey, clientNonce), { mrConfigId: mrConfigIdOf(HOST), mrTd: Buffer.from(MR_TD, 'hex'), rtmr: tdRtmr })
    return {
      answer: { Nonce: randomBytes(32), NonceExpiresUnixMs: 0, Evidence: evidenceToWire(ev), RootCACert: Buffer.from(tdx.root.raw) },
      clientNonce,
      tlsRoot: tdx.root,
      tlsKeys: [tlsKey],
      at: TEST_AT,
    }
  }

  it('needs the kernel and command line (RTMR1, RTMR2) pinned, not MRTD alone, and checks them', async () => {
    const tdx = await tdxTestPlatform()
    const base = { identity: { kind: 'policy-hash' as const, hex: HOST }, measurements: [MR_TD], acceptSimulated: false, vendorRoots: { tdx: [tdx.root] } }
    // Any kernel behind the pinned firmware: refused without RTMR pins.
    const otherKernel = [rtmr[0], Buffer.alloc(48, 0x99), rtmr[2], rtmr[3]] as unknown as typeof rtmr
    const s1 = await seen(tdx, rtmr)
    const s2 = await seen(tdx, otherKernel)
    expect(thrown(() => verifyCoordinator(s1, base))).toMatchObject({ code: 'COORDINATOR_UNTRUSTED', details: { step: 'identity', tee: 'tdx' } })
    const pinned = { ...base, rtmr: [`1=${toHex(rtmr[1])}`, `2=${toHex(rtmr[2])}`] }
    expect(verifyCoordinator(s1, pinned).tee).toBe('tdx')
    const err = thrown(() => verifyCoordinator(s2, pinned))
    expect(err).toMatchObject({ code: 'COORDINATOR_UNTRUSTED', details: { step: 'evidence', reason: 'COORDINATOR_REFERENCE_MISMATCH' } })
    expect(err.details.reasons).toEqual([expect.objectContaining({ code: 'TDX_RTMR_NOT_ALLOWED' })])
  })
})

describe('requireMeasurementPin for TDX', () => {
  const m = ['00'.repeat(48)]
  it('needs RTMR1 and RTMR2 pins besides MRTD', () => {
    for (const rtmr of [undefined, [`1=${'11'.repeat(48)}`], [`0=${'00'.repeat(48)}`, `2=${'22'.repeat(48)}`]]) {
      expect(thrown(() => requireMeasurementPin(m, 'tdx', rtmr))).toMatchObject({ code: 'COORDINATOR_UNTRUSTED', details: { tee: 'tdx' } })
    }
    expect(() => requireMeasurementPin(m, 'tdx', [`1=${'11'.repeat(48)}`, `2=${'22'.repeat(48)}`])).not.toThrow()
    expect(() => requireMeasurementPin(m, 'snp')).not.toThrow()
  })
})
