// Admission through the mesh API with evidence in the real SNP and TDX formats (vendor
// root swapped for a test root): what a guest must show to get a policy's certificate
// and workload secret. Each case is an attack an independent review demonstrated.

import { randomBytes, webcrypto, X509Certificate } from 'node:crypto'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { bindReportData, SimulatedProvider, type Evidence } from '../../src/attestation/index.js'
import { CoordinatorCa, MeshApi, parseManifest, saveState, simulatedSealer, type CoordinatorState } from '../../src/coordinator/index.js'
import { evidenceToWire } from '../../src/meshapi/index.js'
import { generateKeyPair, splitPemCertificates } from '../../src/pki/index.js'
import { rejected } from '../support.js'
import { HOST_A, HOST_COORDINATOR, removeState, testLog } from './harness.js'
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
    manifestGeneration: 0,
    updateKeyPem: undefined,
  }
  const tlsKeyDer = await spki()
  const sealer = await simulatedSealer(dir)
  const api = new MeshApi({
    state,
    persist: (s) => saveState(dir, s, sealer),
    log: testLog().log,
    provider: await SimulatedProvider.create({ hostData: Buffer.from(HOST_COORDINATOR, 'hex'), now: new Date('2026-01-01T00:00:00Z') }),
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

describe('key confusion: the request key is parsed and re-encoded before binding', () => {
  it("refuses the coordinator's own TLS key with bytes appended (its Challenge evidence replayed)", async () => {
    const c = await coordinator({ policies: { [HOST_COORDINATOR]: { sans: ['c.mesh'], workloadSecretId: 'c' } }, acceptSimulated: true }, {})
    const ch1 = await c.api.challenge({ ClientNonce: randomBytes(16) })
    const tail = randomBytes(8)
    // SHA-512(tlsKey ‖ tail ‖ N1) = SHA-512((tlsKey ‖ tail) ‖ N1): one digest, two readings.
    const ch2 = await c.api.challenge({ ClientNonce: Buffer.concat([tail, ch1.Nonce]) })
    const err = await rejected(
      c.api.newMeshCert({ Nonce: ch1.Nonce, PublicKey: Buffer.concat([c.tlsKeyDer, tail]), Evidence: ch2.Evidence }, undefined),
    )
    expect(err).toMatchObject({ code: 'COORDINATOR_BAD_REQUEST', details: { field: 'PublicKey' } })
  })

  it('refuses any non-canonical encoding of a pod key', async () => {
    const snp = await snpTestGuest({ hostData: Buffer.from(HOST_A, 'hex'), measurement: Buffer.from(MEASUREMENT, 'hex') })
    const c = await coordinator({ policies, referenceValues: { snp: snpRef } }, { snp: [snp.root] })
    const ch = await c.api.challenge({ ClientNonce: randomBytes(32) })
    const key = Buffer.concat([await spki(), Buffer.from([0])])
    const ev = await snp.evidence(bindReportData(key, ch.Nonce))
    const err = await rejected(c.api.newMeshCert({ Nonce: ch.Nonce, PublicKey: key, Evidence: evidenceToWire(ev) }, undefined))
    expect(err).toMatchObject({ code: 'COORDINATOR_BAD_REQUEST', details: { field: 'PublicKey' } })
  })
})

describe('a TEE type the manifest gives no reference values for is refused', () => {
  it('refuses a TD whose MRCONFIGID is a policy key when only snp reference values exist', async () => {
    const tdx = await tdxTestPlatform()
    const c = await coordinator({ policies, referenceValues: { snp: snpRef } }, { tdx: [tdx.root] })
    const err = await rejected(admit(c, (rd) => tdx.evidence(rd, { mrConfigId: mrConfigIdOf(HOST_A) })))
    expect(err).toMatchObject({ code: 'COORDINATOR_TEE_NOT_ADMITTED', details: { tee: 'tdx' } })
  })

  it('refuses real SNP when only tdx reference values exist, and both without any', async () => {
    const snp = await snpTestGuest({ hostData: Buffer.from(HOST_A, 'hex'), measurement: Buffer.from(MEASUREMENT, 'hex') })
    for (const referenceValues of [{ tdx: tdxRef }, undefined]) {
      const c = await coordinator({ policies, ...(referenceValues !== undefined ? { referenceValues } : {}) }, { snp: [snp.root] })
      expect(await rejected(admit(c, (rd) => snp.evidence(rd)))).toMatchObject({ code: 'COORDINATOR_TEE_NOT_ADMITTED', details: { tee: 'snp' } })
    }
  })
})

describe('unmeasured guests do not get a victim identity', () => {
  it('the manifest refuses SNP and TDX reference values without launch measurements, naming the path', () => {
    const cases: [object, string][] = [
      [{ snp: { minimumTcb: { snp: 8 } } }, 'referenceValues.snp.measurements'],
      [{ tdx: { minimumTeeTcbSvn: '00'.repeat(16) } }, 'referenceValues.tdx.mrTd'],
      [{ tdx: { mrTd: [MR_TD] } }, 'referenceValues.tdx.rtmr'],
      [{ tdx: { mrTd: [MR_TD], rtmr: { '0': [RTMR[0]] } } }, 'referenceValues.tdx.rtmr.1'],
    ]
    for (const [referenceValues, path] of cases) {
      let err: any
      try {
        parseManifest(JSON.stringify({ policies, referenceValues }), 'm.json')
      } catch (e) {
        err = e
      }
      expect(err, path).toMatchObject({ code: 'COORDINATOR_MANIFEST_INVALID' })
      expect(err.details.issues.map((i: { path: string }) => i.path), path).toContain(path)
      expect(err.message).toContain(path)
    }
  })

  it('a guest with the victim HOST_DATA but another image is refused (SNP), and so is a TD with another kernel (RTMR1)', async () => {
    const snp = await snpTestGuest({ hostData: Buffer.from(HOST_A, 'hex'), measurement: Buffer.alloc(48, 0x99) })
    const tdx = await tdxTestPlatform()
    const c = await coordinator({ policies, referenceValues: { snp: snpRef, tdx: tdxRef } }, { snp: [snp.root], tdx: [tdx.root] })
    const e1 = await rejected(admit(c, (rd) => snp.evidence(rd)))
    expect(e1).toMatchObject({ code: 'COORDINATOR_REFERENCE_MISMATCH' })
    expect(e1.details.reasons.map((r: { code: string }) => r.code)).toEqual(['SNP_MEASUREMENT_NOT_ALLOWED'])
    const otherKernel = [rtmrBytes[0], Buffer.alloc(48, 0x99), rtmrBytes[2], rtmrBytes[3]] as unknown as typeof rtmrBytes
    const e2 = await rejected(admit(c, (rd) => tdx.evidence(rd, { mrConfigId: mrConfigIdOf(HOST_A), mrTd: Buffer.from(MR_TD, 'hex'), rtmr: otherKernel })))
    expect(e2).toMatchObject({ code: 'COORDINATOR_REFERENCE_MISMATCH' })
    expect(e2.details.reasons).toEqual([expect.objectContaining({ code: 'TDX_RTMR_NOT_ALLOWED', details: { rtmr: 1, value: '99'.repeat(48) }, path: 'referenceValues.tdx.rtmr.1' })])
  })
})

describe('SNP VMPL, guest policy and launch TCB', () => {
  const host = Buffer.from(HOST_A, 'hex')
  const measurement = Buffer.from(MEASUREMENT, 'hex')
  const BASE_POLICY = (1n << 17n) | (1n << 16n)

  async function refused(guestOpts: { vmpl?: number; policy?: bigint }, snpRefExtra: object = {}) {
    const snp = await snpTestGuest({ hostData: host, measurement, ...guestOpts })
    const c = await coordinator({ policies, referenceValues: { snp: { ...snpRef, ...snpRefExtra } } }, { snp: [snp.root] })
    return rejected(admit(c, (rd) => snp.evidence(rd)))
  }
  async function admitted(guestOpts: { vmpl?: number; policy?: bigint }, snpRefExtra: object = {}) {
    const snp = await snpTestGuest({ hostData: host, measurement, ...guestOpts })
    const c = await coordinator({ policies, referenceValues: { snp: { ...snpRef, ...snpRefExtra } } }, { snp: [snp.root] })
    return admit(c, (rd) => snp.evidence(rd))
  }
  const codes = (err: any): string[] => err.details.reasons.map((r: { code: string }) => r.code)

  it('VMPL 0 is required by default; a manifest may allow another level (SVSM)', async () => {
    const err = await refused({ vmpl: 1 })
    expect(err).toMatchObject({ code: 'COORDINATOR_REFERENCE_MISMATCH' })
    expect(codes(err)).toEqual(['SNP_VMPL_MISMATCH'])
    expect(err.details.reasons[0].path).toBe('referenceValues.snp.vmpl')
    expect(err.message).toContain('SNP_VMPL_MISMATCH (referenceValues.snp.vmpl)')
    expect((await admitted({ vmpl: 1 }, { vmpl: 1 })).CertChain.length).toBeGreaterThan(0)
    expect(codes(await refused({ vmpl: 0 }, { vmpl: 1 }))).toEqual(['SNP_VMPL_MISMATCH'])
  })

  it('MIGRATE_MA is refused unless the manifest allows a migration agent', async () => {
    const policy = BASE_POLICY | (1n << 18n)
    expect(codes(await refused({ policy }))).toEqual(['SNP_MIGRATE_MA_ALLOWED'])
    expect((await admitted({ policy }, { guestPolicy: { allowMigrationAgent: true } })).CertChain.length).toBeGreaterThan(0)
  })

  it('other guest policy bits are checked against what the manifest requires', async () => {
    expect(codes(await refused({}, { guestPolicy: { allowSmt: false } }))).toEqual(['SNP_GUEST_POLICY_MISMATCH'])
    expect(codes(await refused({ policy: BASE_POLICY | (1n << 21n) }))).toEqual(['SNP_GUEST_POLICY_MISMATCH'])
    expect(codes(await refused({}, { guestPolicy: { requireSingleSocket: true } }))).toEqual(['SNP_GUEST_POLICY_MISMATCH'])
    expect(codes(await refused({}, { guestPolicy: { minimumAbi: { major: 1, minor: 0 } } }))).toEqual(['SNP_GUEST_POLICY_MISMATCH'])
    const all = BASE_POLICY | (1n << 20n) | (1n << 22n) | (1n << 23n) | (1n << 24n) | (1n << 25n) | (1n << 8n)
    const strict = { allowSmt: true, requireSingleSocket: true, requireMemAes256Xts: true, requireRaplDisabled: true, requireCiphertextHiding: true, requirePageSwapDisabled: true, minimumAbi: { major: 1, minor: 0 } }
    expect((await admitted({ policy: all }, { guestPolicy: strict })).CertChain.length).toBeGreaterThan(0)
  })

  it('LAUNCH_TCB has a minimum of its own, as REPORTED_TCB does (the simulation reports SNP SPL 8)', async () => {
    expect(codes(await refused({}, { minimumLaunchTcb: { snp: 9 } }))).toEqual(['SNP_LAUNCH_TCB_BELOW_MINIMUM'])
    expect((await admitted({}, { minimumLaunchTcb: { snp: 8 }, minimumTcb: { snp: 8 } })).CertChain.length).toBeGreaterThan(0)
  })
})

describe('TDX hardening: QE report, TD attributes, XFAM, TDX module', () => {
  const td = { mrConfigId: mrConfigIdOf(HOST_A), mrTd: Buffer.from(MR_TD, 'hex'), rtmr: rtmrBytes }
  const le64 = (n: bigint): Buffer => {
    const b = Buffer.alloc(8)
    b.writeBigUInt64LE(n)
    return b
  }
  const SEPT_VE_DISABLE = 1n << 28n
  async function setup(tdxExtra: object = {}) {
    const tdx = await tdxTestPlatform()
    const c = await coordinator({ policies, referenceValues: { tdx: { ...tdxRef, ...tdxExtra } } }, { tdx: [tdx.root] })
    return { tdx, c }
  }
  const codes = (err: any): string[] => err.details.reasons.map((r: { code: string }) => r.code)

  it('a migratable TD, or one with a TUD profiling bit, is refused by default', async () => {
    const { tdx, c } = await setup()
    for (const attrs of [SEPT_VE_DISABLE | (1n << 29n), SEPT_VE_DISABLE | (1n << 5n)]) {
      const err = await rejected(admit(c, (rd) => tdx.evidence(rd, { ...td, tdAttributes: le64(attrs) })))
      expect(err).toMatchObject({ code: 'COORDINATOR_REFERENCE_MISMATCH' })
      expect(codes(err)).toEqual(['TDX_TD_ATTRIBUTES_NOT_ALLOWED'])
      expect(err.details.reasons[0].path).toMatch(/^referenceValues\.tdx\.allow(Migratable|Debug)$/)
    }
    const { tdx: t2, c: c2 } = await setup({ allowMigratable: true })
    expect((await admit(c2, (rd) => t2.evidence(rd, { ...td, tdAttributes: le64(SEPT_VE_DISABLE | (1n << 29n)) }))).CertChain.length).toBeGreaterThan(0)
  })

  it('TD attributes, XFAM and MRSEAM allow-lists from the manifest', async () => {
    const { tdx, c } = await setup({ tdAttributes: [le64(SEPT_VE_DISABLE).toString('hex')], xfam: ['e702060000000000'] })
    const err = await rejected(admit(c, (rd) => tdx.evidence(rd, td))) // the template's PKS attributes and XFAM e71a06…
    expect(codes(err)).toEqual(['TDX_TD_ATTRIBUTES_NOT_ALLOWED', 'TDX_XFAM_NOT_ALLOWED'])
    const ok = await admit(c, (rd) => tdx.evidence(rd, { ...td, tdAttributes: le64(SEPT_VE_DISABLE), xfam: Buffer.from('e702060000000000', 'hex') }))
    expect(ok.CertChain.length).toBeGreaterThan(0)
    const { tdx: t2, c: c2 } = await setup({ mrSeam: ['00'.repeat(48)] })
    expect(codes(await rejected(admit(c2, (rd) => t2.evidence(rd, td))))).toEqual(['TDX_MR_SEAM_NOT_ALLOWED'])
  })

  it('a QE report with the DEBUG attribute is no genuine quote; the QE ISVSVN has a minimum', async () => {
    const { tdx, c } = await setup({ minimumQeSvn: 5 })
    const dbg = Buffer.from('1700000000000000e700000000000000', 'hex') // INIT | DEBUG | MODE64BIT | PROVISIONKEY
    const e1 = await rejected(admit(c, (rd) => tdx.evidence(rd, { ...td, qeAttributes: dbg, qeIsvSvn: 5 })))
    expect(e1).toMatchObject({ code: 'COORDINATOR_EVIDENCE_REJECTED' })
    expect(codes(e1)).toEqual(['TDX_QE_ATTRIBUTES_MISMATCH'])
    expect(codes(await rejected(admit(c, (rd) => tdx.evidence(rd, { ...td, qeMiscSelect: 1, qeIsvSvn: 5 }))))).toEqual(['TDX_QE_ATTRIBUTES_MISMATCH'])
    expect(codes(await rejected(admit(c, (rd) => tdx.evidence(rd, td))))).toEqual(['TDX_QE_SVN_BELOW_MINIMUM']) // the template's QE has ISVSVN 4
    expect((await admit(c, (rd) => tdx.evidence(rd, { ...td, qeIsvSvn: 5 }))).CertChain.length).toBeGreaterThan(0)
  })
})
