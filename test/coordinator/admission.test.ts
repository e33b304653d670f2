// Admission through the mesh API with evidence in the real SNP and TDX formats (vendor
// root swapped for a test root): what a guest must show to get a policy's certificate
// and workload secret. Each case is an attack an independent review demonstrated.

import { randomBytes, webcrypto, X509Certificate } from 'node:crypto'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { bindReportData, type Evidence } from '../../src/attestation/index.js'
import { CoordinatorCa, evidenceToWire, MeshApi, parseManifest, saveState, type CoordinatorState } from '../../src/coordinator/index.js'
import { generateKeyPair, splitPemCertificates } from '../../src/pki/index.js'
import { rejected } from '../support.js'
import { HOST_A, HOST_COORDINATOR, removeState, simulated, testLog } from './harness.js'
import { mrConfigIdOf, snpTestGuest, tdxTestPlatform, TEST_AT, type SnpTestGuest, type TdxTestPlatform } from './real-evidence.js'

const MEASUREMENT = '5a'.repeat(48)
const MR_TD = '6b'.repeat(48)
const RTMR = ['70', '71', '72', '73'].map((b) => b.repeat(48)) as [string, string, string, string]
const rtmrBytes = RTMR.map((h) => Buffer.from(h, 'hex')) as unknown as [Uint8Array, Uint8Array, Uint8Array, Uint8Array]

interface Api {
  api: MeshApi
  state: CoordinatorState
  tlsKeyDer: Uint8Array
  dir: string
}

const dirs: string[] = []
afterEach(async () => {
  for (const d of dirs.splice(0)) await removeState(d)
})

async function spki(): Promise<Uint8Array> {
  const kp = await generateKeyPair('P-256')
  return new Uint8Array(await webcrypto.subtle.exportKey('spki', kp.keys.publicKey))
}

async function coordinator(manifest: object, roots: { snp?: X509Certificate[]; tdx?: X509Certificate[] }): Promise<Api> {
  const dir = await mkdtemp(join(tmpdir(), 'pmco-adm-'))
  dirs.push(dir)
  const now = TEST_AT.getTime()
  const state: CoordinatorState = {
    ca: await CoordinatorCa.create({ curve: 'P-256', now, leafLifetimeMs: 60_000 }),
    manifest: parseManifest(JSON.stringify(manifest)),
    updateKeyPem: undefined,
  }
  const tlsKeyDer = await spki()
  const api = new MeshApi({
    state,
    persist: (s) => saveState(dir, s),
    log: testLog().log,
    provider: await simulated(HOST_COORDINATOR),
    tlsPublicKeyDer: tlsKeyDer,
    leafLifetimeMs: 60_000,
    now: () => now,
    vendorRoots: roots,
  })
  return { api, state, tlsKeyDer, dir }
}

/** Challenge, then NewMeshCert with evidence the guest produces for the binding. */
async function admit(c: Api, evidence: (reportData: Uint8Array) => Promise<Evidence> | Evidence) {
  const ch = await c.api.challenge({ ClientNonce: randomBytes(32) })
  const key = await spki()
  const ev = await evidence(bindReportData(key, ch.Nonce))
  return c.api.newMeshCert({ Nonce: ch.Nonce, PublicKey: key, Evidence: evidenceToWire(ev) }, undefined)
}

const policies = { [HOST_A]: { sans: ['a.mesh.test'], workloadSecretId: 'victim' } }
const snpRef = { measurements: [MEASUREMENT] }
const tdxRef = { mrTd: [MR_TD], rtmr: { '0': [RTMR[0]], '1': [RTMR[1]], '2': [RTMR[2]] } }

describe('admission with real evidence formats', () => {
  let snp: SnpTestGuest
  let tdx: TdxTestPlatform

  it('admits an SNP guest and a TD that meet the reference values (the harness works)', async () => {
    snp = await snpTestGuest({ hostData: Buffer.from(HOST_A, 'hex'), measurement: Buffer.from(MEASUREMENT, 'hex') })
    tdx = await tdxTestPlatform()
    const c = await coordinator({ policies, referenceValues: { snp: snpRef, tdx: tdxRef } }, { snp: [snp.root], tdx: [tdx.root] })
    const a = await admit(c, (rd) => snp.evidence(rd))
    const b = await admit(c, (rd) => tdx.evidence(rd, { mrConfigId: mrConfigIdOf(HOST_A), mrTd: Buffer.from(MR_TD, 'hex'), rtmr: rtmrBytes }))
    for (const res of [a, b]) {
      expect(splitPemCertificates(Buffer.from(res.CertChain).toString())[0]!.subject).toBe('CN=a.mesh.test')
      expect(res.WorkloadSecret).toHaveLength(32)
    }
  })
})
