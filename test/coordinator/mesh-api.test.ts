import { createHash, generateKeyPairSync, randomBytes, sign, webcrypto, X509Certificate } from 'node:crypto'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bindReportData } from '../../src/attestation/index.js'
import {
  CoordinatorCa,
  loadState,
  manifestUpdateMessage,
  MeshApi,
  parseManifest,
  peerAddress,
  saveState,
  simulatedSealer,
  type CoordinatorState,
  type StateSealer,
} from '../../src/coordinator/index.js'
import { evidenceToWire } from '../../src/meshapi/index.js'
import { generateKeyPair, splitPemCertificates } from '../../src/pki/index.js'
import { HOST_A, HOST_B, HOST_COORDINATOR, HOST_UNKNOWN, manifestText, removeState, simulated, testLog } from './harness.js'
import { rejected } from '../support.js'

const subtle = webcrypto.subtle

interface Fixture {
  api: MeshApi
  state: CoordinatorState
  clock: { now: number }
  tlsKeyDer: Uint8Array
  updateKey: ReturnType<typeof generateKeyPairSync>
  dir: string
  sealer: StateSealer
}

async function fixture(
  opts: { manifest?: string; leafLifetimeMs?: number; nonceTtlMs?: number; maxOutstandingNonces?: number; maxOutstandingPerPeer?: number } = {},
): Promise<Fixture> {
  const clock = { now: Date.UTC(2026, 10, 22, 12) }
  const dir = await mkdtemp(join(tmpdir(), 'pmco-api-'))
  const updateKey = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const ca = await CoordinatorCa.create({ curve: 'P-256', now: clock.now, leafLifetimeMs: opts.leafLifetimeMs ?? 60_000 })
  const state: CoordinatorState = {
    ca,
    manifest: parseManifest(opts.manifest ?? manifestText()),
    manifestGeneration: 0,
    updateKeyPem: updateKey.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  }
  const tlsKeyDer = await podKey()
  const sealer = await simulatedSealer(dir)
  const api = new MeshApi({
    state,
    persist: (s) => saveState(dir, s, sealer),
    log: testLog().log,
    provider: await simulated(HOST_COORDINATOR, clock.now),
    tlsPublicKeyDer: tlsKeyDer,
    leafLifetimeMs: opts.leafLifetimeMs ?? 60_000,
    nonceTtlMs: opts.nonceTtlMs ?? 10_000,
    ...(opts.maxOutstandingNonces !== undefined ? { maxOutstandingNonces: opts.maxOutstandingNonces } : {}),
    ...(opts.maxOutstandingPerPeer !== undefined ? { maxOutstandingPerPeer: opts.maxOutstandingPerPeer } : {}),
    now: () => clock.now,
  })
  return { api, state, clock, tlsKeyDer, updateKey, dir, sealer }
}

async function podKey(): Promise<Uint8Array> {
  const kp = await generateKeyPair('P-256')
  return new Uint8Array(await subtle.exportKey('spki', kp.keys.publicKey))
}

/** A full, honest request from a pod with the given HOSTDATA. */
async function request(f: Fixture, host: string, tweak: { bindKey?: Uint8Array; bindNonce?: Uint8Array } = {}) {
  const ch = await f.api.challenge({ ClientNonce: randomBytes(32) })
  const key = await podKey()
  const provider = await simulated(host, f.clock.now)
  const ev = await provider.getEvidence(bindReportData(tweak.bindKey ?? key, tweak.bindNonce ?? ch.Nonce))
  return { Nonce: ch.Nonce, PublicKey: key, Evidence: evidenceToWire(ev) }
}

function signUpdate(f: Fixture, text: string, currentHash = f.state.manifest.hash, generation = f.state.manifestGeneration): Buffer {
  return sign('sha256', manifestUpdateMessage(generation, currentHash, Buffer.from(text)), f.updateKey.privateKey)
}

describe('MeshApi: Challenge needs no credentials, so one client must not use up the nonces', () => {
  let f: Fixture
  beforeAll(async () => {
    f = await fixture({ maxOutstandingNonces: 100, maxOutstandingPerPeer: 8 })
  })
  afterAll(async () => removeState(f.dir))

  it("a client that asks for challenges without end is refused after its own share; other pods still get theirs", async () => {
    const flood = 'ipv4:10.80.0.66:40000'
    const refused: unknown[] = []
    for (let i = 0; i < 200; i++) {
      try {
        await f.api.challenge({ ClientNonce: randomBytes(32) }, flood)
      } catch (err) {
        refused.push(err)
      }
    }
    // Another pod: a challenge, and the certificate it leads to.
    const ch = await f.api.challenge({ ClientNonce: randomBytes(32) }, 'ipv4:10.80.0.2:43210')
    const key = await podKey()
    const ev = await (await simulated(HOST_B, f.clock.now)).getEvidence(bindReportData(key, ch.Nonce))
    const res = await f.api.newMeshCert({ Nonce: ch.Nonce, PublicKey: key, Evidence: evidenceToWire(ev) }, 'ipv4:10.80.0.2:43210')
    expect(res.CertChain.length).toBeGreaterThan(0)
    expect(refused).toHaveLength(192)
    expect(refused[0]).toMatchObject({ code: 'COORDINATOR_BUSY', details: { peer: '10.80.0.66', outstanding: 8, max: 8 } })
    // Spent nonces count until they expire (they are kept to refuse replays); then the share is back.
    f.clock.now += 10_001
    try {
      expect((await f.api.challenge({ ClientNonce: randomBytes(32) }, flood)).Nonce).toHaveLength(32)
    } finally {
      f.clock.now -= 10_001
    }
  })

  it('pods behind one address (a NAT) are held back by failures only: an issued certificate frees its share', async () => {
    const g = await fixture({ maxOutstandingPerPeer: 2 })
    const nat = 'ipv4:10.82.0.1:1'
    const attempt = async (host: string) => {
      const ch = await g.api.challenge({ ClientNonce: randomBytes(32) }, nat)
      const key = await podKey()
      const ev = await (await simulated(host, g.clock.now)).getEvidence(bindReportData(key, ch.Nonce))
      return g.api.newMeshCert({ Nonce: ch.Nonce, PublicKey: key, Evidence: evidenceToWire(ev) }, nat)
    }
    try {
      for (let i = 0; i < 5; i++) expect((await attempt(HOST_A)).CertChain.length).toBeGreaterThan(0)
      expect(await rejected(attempt(HOST_UNKNOWN))).toMatchObject({ code: 'COORDINATOR_POLICY_NOT_FOUND' })
      expect(await rejected(attempt(HOST_UNKNOWN))).toMatchObject({ code: 'COORDINATOR_POLICY_NOT_FOUND' })
      expect(await rejected(attempt(HOST_A))).toMatchObject({ code: 'COORDINATOR_BUSY', details: { peer: '10.82.0.1', outstanding: 2 } })
    } finally {
      await removeState(g.dir)
    }
  })

  it('the total stays bounded too: distinct clients beyond it are refused', async () => {
    const g = await fixture({ maxOutstandingNonces: 20, maxOutstandingPerPeer: 8 })
    try {
      let busy = 0
      for (let i = 0; i < 30; i++) {
        await g.api.challenge({ ClientNonce: randomBytes(32) }, `ipv4:10.81.0.${i}:1`).catch((err: { code?: string }) => {
          if (err.code === 'COORDINATOR_BUSY') busy++
        })
      }
      expect(busy).toBe(10)
    } finally {
      await removeState(g.dir)
    }
  })
})

describe('MeshApi', () => {
  let f: Fixture
  beforeAll(async () => {
    f = await fixture()
  })
  afterAll(async () => removeState(f.dir))

  it("Challenge: a 32-byte nonce, the root, and the coordinator's evidence bound to its TLS key and the client nonce", async () => {
    const clientNonce = randomBytes(32)
    const ch = await f.api.challenge({ ClientNonce: clientNonce })
    expect(ch.Nonce).toHaveLength(32)
    expect(ch.NonceExpiresUnixMs).toBe(f.clock.now + 10_000)
    expect(ch.Evidence?.Tee).toBe('simulated-snp')
    const reportData = Buffer.from(ch.Evidence!.Raw).subarray(0x50, 0x90)
    expect(reportData.equals(Buffer.from(bindReportData(f.tlsKeyDer, clientNonce)))).toBe(true)
    expect(Buffer.from(ch.Evidence!.Raw).subarray(0xc0, 0xe0).toString('hex')).toBe(HOST_COORDINATOR)
    expect(new X509Certificate(Buffer.from(ch.RootCACert)).subject).toBe('CN=system:coordinator:root')
  })

  it.each([0, 8, 65])('Challenge refuses a client nonce of %i bytes', async (n) => {
    expect(await rejected(f.api.challenge({ ClientNonce: randomBytes(n) }))).toMatchObject({
      code: 'COORDINATOR_BAD_REQUEST',
      details: { field: 'ClientNonce', length: n },
    })
  })

  it('NewMeshCert issues leaf ‖ intermediate for the policy SANs plus the peer IP, with the bundle and root', async () => {
    const res = await f.api.newMeshCert(await request(f, HOST_B), 'ipv4:10.80.0.2:43210')
    const chain = splitPemCertificates(Buffer.from(res.CertChain).toString())
    expect(chain).toHaveLength(2)
    expect(chain[0]!.subject).toBe('CN=b.mesh.test')
    expect(chain[0]!.subjectAltName).toBe('DNS:b.mesh.test, URI:spiffe://mesh/b, IP Address:10.9.9.9, IP Address:10.80.0.2')
    expect(chain[0]!.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'])
    const root = new X509Certificate(Buffer.from(res.RootCACert))
    expect(chain[1]!.verify(root.publicKey)).toBe(true)
    const meshCas = splitPemCertificates(Buffer.from(res.MeshCACert).toString())
    expect(meshCas).toHaveLength(1)
    expect(chain[0]!.verify(meshCas[0]!.publicKey)).toBe(true)
    expect(res.WorkloadSecret).toHaveLength(0) // B has no workload secret id
  })

  it('the workload secret is derived per id and stable', async () => {
    const one = await f.api.newMeshCert(await request(f, HOST_A), undefined)
    const two = await f.api.newMeshCert(await request(f, HOST_A), undefined)
    expect(one.WorkloadSecret).toHaveLength(32)
    expect(Buffer.from(one.WorkloadSecret).equals(Buffer.from(two.WorkloadSecret))).toBe(true)
  })

  it('a replayed nonce is refused, even with fresh evidence for it', async () => {
    const req = await request(f, HOST_A)
    await f.api.newMeshCert(req, undefined)
    expect(await rejected(f.api.newMeshCert(req, undefined))).toMatchObject({ code: 'COORDINATOR_NONCE_REPLAYED' })
  })

  it('a nonce is spent by a failed attempt too', async () => {
    const req = await request(f, HOST_UNKNOWN)
    expect(await rejected(f.api.newMeshCert(req, undefined))).toMatchObject({ code: 'COORDINATOR_POLICY_NOT_FOUND' })
    expect(await rejected(f.api.newMeshCert(req, undefined))).toMatchObject({ code: 'COORDINATOR_NONCE_REPLAYED' })
  })

  it('a nonce the coordinator never issued is refused', async () => {
    const req = await request(f, HOST_A)
    expect(await rejected(f.api.newMeshCert({ ...req, Nonce: randomBytes(32) }, undefined))).toMatchObject({ code: 'COORDINATOR_NONCE_UNKNOWN' })
  })

  it('an expired nonce is refused', async () => {
    const req = await request(f, HOST_A)
    f.clock.now += 10_001
    try {
      expect(await rejected(f.api.newMeshCert(req, undefined))).toMatchObject({ code: 'COORDINATOR_NONCE_EXPIRED' })
    } finally {
      f.clock.now -= 10_001
    }
  })

  it('evidence bound to another public key is refused', async () => {
    const req = await request(f, HOST_A, { bindKey: await podKey() })
    expect(await rejected(f.api.newMeshCert(req, undefined))).toMatchObject({ code: 'COORDINATOR_BINDING_MISMATCH' })
  })

  it('evidence bound to another nonce is refused', async () => {
    const req = await request(f, HOST_A, { bindNonce: randomBytes(32) })
    expect(await rejected(f.api.newMeshCert(req, undefined))).toMatchObject({ code: 'COORDINATOR_BINDING_MISMATCH' })
  })

  it('an unknown HOSTDATA is COORDINATOR_POLICY_NOT_FOUND naming the hash', async () => {
    const err = await rejected(f.api.newMeshCert(await request(f, HOST_UNKNOWN), undefined))
    expect(err).toMatchObject({ code: 'COORDINATOR_POLICY_NOT_FOUND', details: { policyHash: HOST_UNKNOWN, tee: 'simulated' } })
  })

  it('a report with a flipped byte fails the signature check, named in details', async () => {
    const req = await request(f, HOST_A)
    const raw = Buffer.from(req.Evidence.Raw)
    raw[0x100] = raw[0x100]! ^ 1
    const err = await rejected(f.api.newMeshCert({ ...req, Evidence: { ...req.Evidence, Raw: raw } }, undefined))
    expect(err.code).toBe('COORDINATOR_EVIDENCE_REJECTED')
    expect(err.details.reasons.map((r: { code: string }) => r.code)).toContain('SNP_REPORT_SIGNATURE_INVALID')
  })

  it('simulated evidence claiming to be real SNP fails the AMD chain', async () => {
    const g = await fixture({ manifest: manifestText({ referenceValues: { snp: { measurements: ['00'.repeat(48)] } } }) })
    const req = await request(g, HOST_A)
    const err = await rejected(g.api.newMeshCert({ ...req, Evidence: { ...req.Evidence, Tee: 'snp' } }, undefined))
    expect(err.code).toBe('COORDINATOR_EVIDENCE_REJECTED')
    expect(err.details.reasons.map((r: { code: string }) => r.code)).toContain('SNP_ARK_NOT_TRUSTED')
    await removeState(g.dir)
  })

  it.each([
    [{ PublicKey: new Uint8Array(0) }, 'PublicKey'],
    [{ PublicKey: Buffer.from('not a key') }, 'PublicKey'],
    [{ Nonce: randomBytes(16) }, 'Nonce'],
    [{ Evidence: undefined }, 'Evidence'],
  ])('a malformed request is COORDINATOR_BAD_REQUEST naming %#', async (patch, field) => {
    const req = await request(f, HOST_A)
    expect(await rejected(f.api.newMeshCert({ ...req, ...patch } as never, undefined))).toMatchObject({
      code: 'COORDINATOR_BAD_REQUEST',
      details: { field },
    })
  })
})

describe('MeshApi: Challenge answers are no evidence for NewMeshCert', () => {
  // Challenge returns the coordinator's evidence over SHA-512(its TLS key ‖ any client
  // nonce); a client nonce equal to a server nonce makes that evidence fit NewMeshCert's
  // binding for the coordinator's own key.
  it("refuses the coordinator's own TLS key, whatever the evidence", async () => {
    const f = await fixture({ manifest: manifestText({}, { [HOST_COORDINATOR]: { sans: ['coordinator.mesh'], workloadSecretId: 'c' } }) })
    const ch1 = await f.api.challenge({ ClientNonce: randomBytes(16) })
    const ch2 = await f.api.challenge({ ClientNonce: ch1.Nonce })
    const err = await rejected(f.api.newMeshCert({ Nonce: ch1.Nonce, PublicKey: f.tlsKeyDer, Evidence: ch2.Evidence }, 'ipv4:10.1.2.3:5555'))
    expect(err).toMatchObject({ code: 'COORDINATOR_KEY_REFUSED', details: { field: 'PublicKey' } })
    await removeState(f.dir)
  })

  it('refuses evidence of a coordinator policy, even bound to another key', async () => {
    const f = await fixture({ manifest: manifestText({}, { [HOST_COORDINATOR]: { sans: ['coordinator.mesh'], role: 'coordinator' } }) })
    const err = await rejected(f.api.newMeshCert(await request(f, HOST_COORDINATOR), undefined))
    expect(err).toMatchObject({ code: 'COORDINATOR_KEY_REFUSED', details: { policyHash: HOST_COORDINATOR } })
    await removeState(f.dir)
  })
})

describe('MeshApi manifest policy', () => {
  it('refuses simulated evidence unless the manifest accepts it', async () => {
    const f = await fixture({ manifest: manifestText({ acceptSimulated: false }) })
    expect(await rejected(f.api.newMeshCert(await request(f, HOST_A), undefined))).toMatchObject({ code: 'COORDINATOR_SIMULATED_REFUSED' })
    await removeState(f.dir)
  })

  it('refuses a simulated root that is not pinned', async () => {
    const f = await fixture({ manifest: manifestText({ simulatedRoots: ['00'.repeat(32)] }) })
    const err = await rejected(f.api.newMeshCert(await request(f, HOST_A), undefined))
    expect(err).toMatchObject({ code: 'COORDINATOR_EVIDENCE_REJECTED' })
    await removeState(f.dir)
  })

  it('refuses a measurement outside the reference values', async () => {
    const f = await fixture({ manifest: manifestText({ referenceValues: { snp: { measurements: ['11'.repeat(48)] } } }) })
    const err = await rejected(f.api.newMeshCert(await request(f, HOST_A), undefined))
    expect(err.code).toBe('COORDINATOR_REFERENCE_MISMATCH')
    expect(err.details.reasons.map((r: { code: string }) => r.code)).toEqual(['SNP_MEASUREMENT_NOT_ALLOWED'])
    await removeState(f.dir)
  })

  it('refuses a TCB below the minimum', async () => {
    const f = await fixture({ manifest: manifestText({ referenceValues: { snp: { measurements: ['00'.repeat(48)], minimumTcb: { snp: 200 } } } }) })
    const err = await rejected(f.api.newMeshCert(await request(f, HOST_A), undefined))
    expect(err.code).toBe('COORDINATOR_REFERENCE_MISMATCH')
    expect(err.details.reasons.map((r: { code: string }) => r.code)).toEqual(['SNP_TCB_BELOW_MINIMUM'])
    await removeState(f.dir)
  })

  it('accepts an allowed measurement (the simulation reports zeros)', async () => {
    const f = await fixture({ manifest: manifestText({ referenceValues: { snp: { measurements: ['00'.repeat(48)], minimumTcb: { snp: 8 } } } }) })
    const res = await f.api.newMeshCert(await request(f, HOST_A), undefined)
    expect(res.CertChain.length).toBeGreaterThan(0)
    await removeState(f.dir)
  })
})

describe('SetManifest and mesh CA rotation', () => {
  const L = 60_000
  const newManifest = manifestText({}, { [HOST_A]: { sans: ['a2.mesh.test'] }, [HOST_B]: { sans: ['b.mesh.test'] } })

  it('needs a signature by the update key over the current manifest', async () => {
    const f = await fixture()
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const bad = [
      sign('sha256', manifestUpdateMessage(0, f.state.manifest.hash, Buffer.from(newManifest)), other.privateKey),
      signUpdate(f, newManifest, '00'.repeat(32)), // bound to another (e.g. older) manifest
      signUpdate(f, newManifest, f.state.manifest.hash, 1), // bound to another generation
      Buffer.alloc(0),
    ]
    for (const Signature of bad) {
      expect(await rejected(f.api.setManifest({ Manifest: Buffer.from(newManifest), Signature }))).toMatchObject({
        code: 'COORDINATOR_UPDATE_UNAUTHENTICATED',
      })
    }
    expect(f.state.ca.generations).toHaveLength(1)
    await removeState(f.dir)
  })

  it('refuses an invalid manifest even when signed', async () => {
    const f = await fixture()
    const text = '{"policies":{"xyz":{"sans":[]}}}'
    const err = await rejected(f.api.setManifest({ Manifest: Buffer.from(text), Signature: signUpdate(f, text) }))
    expect(err.code).toBe('COORDINATOR_MANIFEST_INVALID')
    await removeState(f.dir)
  })

  it('announces a new mesh CA at once, issues from it one leaf lifetime later, drops the old when its leaves expired', async () => {
    const f = await fixture({ leafLifetimeMs: L })
    const before = await f.api.newMeshCert(await request(f, HOST_A), undefined)
    const oldCa = splitPemCertificates(Buffer.from(before.MeshCACert).toString())[0]!

    const res = await f.api.setManifest({ Manifest: Buffer.from(newManifest), Signature: signUpdate(f, newManifest) })
    expect(Buffer.from(res.ManifestHash).toString('hex')).toBe(createHash('sha256').update(newManifest).digest('hex'))
    const newCa = new X509Certificate(Buffer.from(res.MeshCACert))
    expect(newCa.fingerprint256).not.toBe(oldCa.fingerprint256)

    // Announced: the bundle has both, the old CA still signs, the new policy applies.
    const announced = await f.api.newMeshCert(await request(f, HOST_A), undefined)
    const bundle1 = splitPemCertificates(Buffer.from(announced.MeshCACert).toString()).map((c) => c.fingerprint256)
    expect(bundle1).toEqual([newCa.fingerprint256, oldCa.fingerprint256])
    const leaf1 = splitPemCertificates(Buffer.from(announced.CertChain).toString())[0]!
    expect(leaf1.subject).toBe('CN=a2.mesh.test')
    expect(leaf1.verify(oldCa.publicKey)).toBe(true)

    // One leaf lifetime later: the new CA signs; the old stays trusted for the leaves it signed.
    f.clock.now += L
    const active = await f.api.newMeshCert(await request(f, HOST_A), undefined)
    const leaf2 = splitPemCertificates(Buffer.from(active.CertChain).toString())[0]!
    expect(leaf2.verify(newCa.publicKey)).toBe(true)
    expect(splitPemCertificates(Buffer.from(active.MeshCACert).toString()).map((c) => c.fingerprint256)).toEqual(bundle1)
    // The intermediate in the chain is the new CA's twin, under the same root.
    const chain2 = splitPemCertificates(Buffer.from(active.CertChain).toString())
    expect(chain2[1]!.publicKey.export({ type: 'spki', format: 'der' }).equals(newCa.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true)

    // After the old CA's last leaf expired (plus backdate), it leaves the bundle.
    f.clock.now += L + L / 10 + 1
    const later = await f.api.newMeshCert(await request(f, HOST_A), undefined)
    expect(splitPemCertificates(Buffer.from(later.MeshCACert).toString()).map((c) => c.fingerprint256)).toEqual([newCa.fingerprint256])

    // Persisted: the state on disk has the new manifest and the same root.
    const loaded = await loadState(f.dir, f.sealer)
    expect(loaded?.manifest.hash).toBe(f.state.manifest.hash)
    expect(loaded?.ca.root.certificatePem).toBe(f.state.ca.root.certificatePem)
    await removeState(f.dir)
  })

  it('the same manifest again is a no-op: no rotation, and so a replayed update changes nothing', async () => {
    const f = await fixture()
    const text = f.state.manifest.text
    await f.api.setManifest({ Manifest: Buffer.from(text), Signature: signUpdate(f, text) })
    expect(f.state.ca.generations).toHaveLength(1)
    await removeState(f.dir)
  })

  it('a captured update cannot be replayed after A -> B -> A: the signature binds the generation', async () => {
    const f = await fixture()
    const a = f.state.manifest.text
    const aToB = { Manifest: Buffer.from(newManifest), Signature: signUpdate(f, newManifest) }
    await f.api.setManifest(aToB)
    await f.api.setManifest({ Manifest: Buffer.from(a), Signature: signUpdate(f, a) })
    expect(f.state.manifest.text).toBe(a)
    expect(await rejected(f.api.setManifest(aToB))).toMatchObject({ code: 'COORDINATOR_UPDATE_UNAUTHENTICATED' })
    expect(f.state.manifest.text).toBe(a)
    expect(f.state.ca.generations).toHaveLength(3)
    await removeState(f.dir)
  })

  it('refuses updates when no update key was named at first start', async () => {
    const f = await fixture()
    const api = new MeshApi({
      state: { ...f.state, updateKeyPem: undefined },
      persist: async () => {},
      log: testLog().log,
      provider: await simulated(HOST_COORDINATOR, f.clock.now),
      tlsPublicKeyDer: f.tlsKeyDer,
      leafLifetimeMs: L,
      now: () => f.clock.now,
    })
    expect(await rejected(api.setManifest({ Manifest: Buffer.from(newManifest), Signature: signUpdate(f, newManifest) }))).toMatchObject({
      code: 'COORDINATOR_UPDATE_UNAUTHENTICATED',
    })
    await removeState(f.dir)
  })
})

describe('peerAddress', () => {
  it.each([
    ['10.80.0.2:4444', '10.80.0.2'],
    ['ipv4:10.80.0.2:4444', '10.80.0.2'],
    ['[fd00:50::2]:4444', 'fd00:50::2'],
    ['ipv6:[fd00:50::2]:4444', 'fd00:50::2'],
    ['[::ffff:10.1.2.3]:9', '10.1.2.3'],
    ['unix:/tmp/x', undefined],
    [undefined, undefined],
  ])('%s -> %s', (peer, ip) => {
    expect(peerAddress(peer)).toBe(ip)
  })
})
