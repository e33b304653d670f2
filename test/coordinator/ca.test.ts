import { describe, expect, it } from 'vitest'
import { CoordinatorCa, backdateMs } from '../../src/coordinator/index.js'
import { generateKeyPair, splitPemCertificates } from '../../src/pki/index.js'
import { toNodeCertificate } from '../../src/pki/issuing.js'

const NOW = Date.UTC(2026, 10, 22, 12)

describe('CoordinatorCa', () => {
  it.each(['P-256', 'P-384'] as const)('%s: root and mesh CA on the curve, leaf profile as Contrast’s', async (curve) => {
    const ca = await CoordinatorCa.create({ curve, now: NOW, leafLifetimeMs: 24 * 3_600_000 })
    const root = toNodeCertificate(ca.root.certificatePem)
    expect(root.subject).toBe('CN=system:coordinator:root')
    expect(root.publicKey.asymmetricKeyDetails?.namedCurve).toBe(curve === 'P-256' ? 'prime256v1' : 'secp384r1')
    const kp = await generateKeyPair('P-256')
    const issued = await ca.issue({ publicKey: kp.keys.publicKey, sans: ['svc.mesh.test', '10.0.0.7', 'spiffe://x/y'], now: NOW, lifetimeMs: 24 * 3_600_000 })
    const [leaf, intermediate] = splitPemCertificates(issued.certChainPem)
    expect(leaf!.subject).toBe('CN=svc.mesh.test')
    expect(leaf!.subjectAltName).toBe('DNS:svc.mesh.test, IP Address:10.0.0.7, URI:spiffe://x/y')
    expect(leaf!.ca).toBe(false)
    expect(leaf!.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'])
    expect(intermediate!.subject).toBe('CN=system:coordinator:intermediate')
    expect(intermediate!.verify(root.publicKey)).toBe(true)
    const meshCa = splitPemCertificates(issued.meshCaBundlePem)[0]!
    expect(meshCa.subject).toBe(intermediate!.subject)
    expect(meshCa.checkIssued(meshCa)).toBe(true) // the self-signed twin
    // Lifetime: backdated by at most an hour, notAfter = now + lifetime.
    expect(new Date(leaf!.validTo).getTime()).toBe(Math.floor((NOW + 24 * 3_600_000) / 1000) * 1000)
    expect(new Date(leaf!.validFrom).getTime()).toBe(NOW - 3_600_000)
  })

  it('backdates short lifetimes proportionally', () => {
    expect(backdateMs(6_000)).toBe(600)
    expect(backdateMs(24 * 3_600_000)).toBe(3_600_000)
  })

  it('restores from its records with the same root, generations and workload secrets', async () => {
    const ca = await CoordinatorCa.create({ curve: 'P-256', now: NOW, leafLifetimeMs: 60_000 })
    await ca.rotate(NOW + 1, 60_000)
    const rec = await ca.toRecords()
    const back = await CoordinatorCa.restore({ ...rec, curve: 'P-256' })
    expect(back.root.certificatePem).toBe(ca.root.certificatePem)
    expect(back.generations.map((g) => [g.id, g.activeFrom])).toEqual(ca.generations.map((g) => [g.id, g.activeFrom]))
    expect(Buffer.from(back.workloadSecret('ns/x')).equals(Buffer.from(ca.workloadSecret('ns/x')))).toBe(true)
    expect(Buffer.from(back.workloadSecret('ns/x')).equals(Buffer.from(back.workloadSecret('ns/y')))).toBe(false)
  })

  it('refuses records whose key does not belong to the certificate', async () => {
    const a = await (await CoordinatorCa.create({ curve: 'P-256', now: NOW, leafLifetimeMs: 60_000 })).toRecords()
    const b = await (await CoordinatorCa.create({ curve: 'P-256', now: NOW, leafLifetimeMs: 60_000 })).toRecords()
    await expect(CoordinatorCa.restore({ ...a, root: { certPem: a.root.certPem, keyPem: b.root.keyPem }, curve: 'P-256' })).rejects.toMatchObject({
      code: 'COORDINATOR_STATE_INVALID',
      details: { field: 'root' },
    })
  })

  it('generations: issuer switches at activeFrom; a retired CA is trusted until its last leaf expired, then pruned', async () => {
    const L = 10_000
    const ca = await CoordinatorCa.create({ curve: 'P-256', now: NOW, leafLifetimeMs: L })
    const g2 = await ca.rotate(NOW + 1_000, L)
    const g3 = await ca.rotate(NOW + 2_000, L)
    expect(ca.issuer(NOW + 1_000 + L - 1).id).toBe(1)
    expect(ca.issuer(NOW + 1_000 + L).id).toBe(g2.id)
    expect(ca.issuer(NOW + 2_000 + L).id).toBe(g3.id)
    expect(ca.trusted(NOW + 2_000).map((g) => g.id)).toEqual([3, 2, 1])
    // g1 issued until g2 became active; its leaves live L + backdate beyond that.
    const g1Gone = NOW + 1_000 + L + L + backdateMs(L)
    expect(ca.trusted(g1Gone - 1).map((g) => g.id)).toContain(1)
    expect(ca.trusted(g1Gone).map((g) => g.id)).toEqual([3, 2])
    expect(ca.prune(g1Gone)).toBe(true)
    expect(ca.generations.map((g) => g.id)).toEqual([2, 3])
    expect(ca.prune(g1Gone)).toBe(false)
  })
})
