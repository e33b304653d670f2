import { describe, it, expect, beforeAll } from 'vitest'
import { createPublicKey, verify, X509Certificate } from 'node:crypto'
import { SimulatedProvider, SIMULATED_ROOT_CN } from '../../../src/attestation/providers/simulated.js'
import { verifySnp } from '../../../src/attestation/snp/verify.js'
import { rejected } from '../../support.js'

const reportData = Uint8Array.from({ length: 64 }, (_, i) => 0xa0 ^ i)
const hostData = Uint8Array.from({ length: 32 }, (_, i) => i + 1)
const measurement = Uint8Array.from({ length: 48 }, (_, i) => 0xff - i)

let sim: SimulatedProvider
beforeAll(async () => {
  sim = await SimulatedProvider.create({ hostData, measurement })
})

const u32 = (b: Uint8Array, at: number): number => new DataView(b.buffer, b.byteOffset).getUint32(at, true)

describe('SimulatedProvider', () => {
  it('produces a version-3, 0x4A0-byte report carrying report data, host data and measurement', async () => {
    const ev = await sim.getEvidence(reportData)
    expect(ev.tee).toBe('simulated-snp')
    expect(ev.provider).toBe('simulated')
    expect(ev.raw.byteLength).toBe(0x4a0)
    expect(u32(ev.raw, 0)).toBe(3)
    expect(u32(ev.raw, 0x34)).toBe(1) // SIGNATURE_ALGO
    expect(ev.raw.subarray(0x50, 0x90)).toEqual(reportData)
    expect(ev.raw.subarray(0x90, 0xc0)).toEqual(measurement)
    expect(ev.raw.subarray(0xc0, 0xe0)).toEqual(hostData)
    expect(ev.raw.subarray(0x1a0, 0x1e0)).toEqual(sim.chipId)
    expect(ev.raw.subarray(0x330, 0x4a0).every((b) => b === 0)).toBe(true)
  })

  it('signs like the firmware: little-endian R and S in 72-byte fields over [0:0x2A0), verifiable with the VCEK', async () => {
    const ev = await sim.getEvidence(reportData)
    const r = ev.raw.subarray(0x2a0, 0x2a0 + 72)
    const s = ev.raw.subarray(0x2a0 + 72, 0x2a0 + 144)
    expect(r.subarray(48).every((b) => b === 0)).toBe(true)
    expect(s.subarray(48).every((b) => b === 0)).toBe(true)
    const p1363 = Buffer.concat([Buffer.from(r.subarray(0, 48)).reverse(), Buffer.from(s.subarray(0, 48)).reverse()])
    const key = new X509Certificate(Buffer.from(ev.certs!.vcek!)).publicKey
    expect(verify('sha384', ev.raw.subarray(0, 0x2a0), { key, dsaEncoding: 'ieee-p1363' }, p1363)).toBe(true)
    // One flipped signed byte breaks it.
    const tampered = Uint8Array.from(ev.raw)
    tampered[0x50] = tampered[0x50]! ^ 1
    expect(verify('sha384', tampered.subarray(0, 0x2a0), { key, dsaEncoding: 'ieee-p1363' }, p1363)).toBe(false)
  })

  it('chains VCEK -> intermediate -> a self-signed root that says it is not a TEE', async () => {
    const ev = await sim.getEvidence(reportData)
    const [ask, ark] = ev.certs!.chain!.map((d) => new X509Certificate(Buffer.from(d)))
    const vcek = new X509Certificate(Buffer.from(ev.certs!.vcek!))
    const root = new X509Certificate(Buffer.from(sim.rootCertificate))
    expect(ark!.raw.equals(root.raw)).toBe(true)
    expect(root.subject).toContain(`CN=${SIMULATED_ROOT_CN}`)
    expect(root.verify(root.publicKey)).toBe(true)
    expect(ask!.verify(root.publicKey)).toBe(true)
    expect(vcek.verify(ask!.publicKey)).toBe(true)
    expect(vcek.subject).toContain('NOT A TEE')
    expect(vcek.publicKey.asymmetricKeyDetails).toMatchObject({ namedCurve: 'secp384r1' })
    expect(createPublicKey(sim.rootCertificatePem).equals(root.publicKey)).toBe(true)
  })

  it('passes the SNP verifier only when told to trust the simulated root, and is reported as simulated', async () => {
    const ev = await sim.getEvidence(reportData)
    const trusted = verifySnp(ev.raw, {
      at: new Date(),
      vcek: ev.certs!.vcek!,
      chain: [...ev.certs!.chain!],
      roots: { ark: [new X509Certificate(Buffer.from(sim.rootCertificate))] },
      policy: { reportData, hostData: [hostData] },
    })
    expect(trusted.reasons).toEqual([])
    expect(trusted).toMatchObject({ verified: true, tee: 'simulated' })

    const untrusted = verifySnp(ev.raw, { at: new Date(), vcek: ev.certs!.vcek!, chain: [...ev.certs!.chain!] })
    expect(untrusted.verified).toBe(false)
    expect(untrusted.reasons.map((r) => r.code)).toContain('SNP_ARK_NOT_TRUSTED')
  })

  it('another instance has another root: its evidence does not verify against this root', async () => {
    const other = await SimulatedProvider.create()
    const ev = await other.getEvidence(reportData)
    const res = verifySnp(ev.raw, {
      at: new Date(),
      vcek: ev.certs!.vcek!,
      chain: [...ev.certs!.chain!],
      roots: { ark: [new X509Certificate(Buffer.from(sim.rootCertificate))] },
    })
    expect(res.reasons.map((r) => r.code)).toContain('SNP_ARK_NOT_TRUSTED')
  })

  it('refuses report data that is not 64 bytes, bad options, and an aborted signal', async () => {
    expect(await rejected(sim.getEvidence(new Uint8Array(32)))).toMatchObject({ code: 'PROVIDER_BAD_INPUT', details: { field: 'reportData', length: 32 } })
    expect(await rejected(SimulatedProvider.create({ hostData: new Uint8Array(31) }))).toMatchObject({ code: 'PROVIDER_BAD_INPUT', details: { field: 'hostData' } })
    expect(await rejected(SimulatedProvider.create({ vmpl: 4 }))).toMatchObject({ code: 'PROVIDER_BAD_INPUT', details: { field: 'vmpl' } })
    const ac = new AbortController()
    ac.abort()
    expect(await rejected(sim.getEvidence(reportData, { signal: ac.signal }))).toMatchObject({ code: 'PROVIDER_ABORTED' })
  })
})
