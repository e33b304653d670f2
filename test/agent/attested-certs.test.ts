import { createHash, X509Certificate } from 'node:crypto'
import { getEventListeners } from 'node:events'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AttestedCertificates, definitiveFailureReason } from '../../src/agent/attested-certs.js'
import { readTlsDir, splitPemCertificates } from '../../src/pki/index.js'
import { HOST_A, HOST_COORDINATOR, HOST_UNKNOWN, removeState, simulated, startTestCoordinator, testLog, type TestCoordinator } from '../coordinator/harness.js'
import { rejected } from '../support.js'
import { MeshApiError } from '../../src/meshapi/index.js'
import { InitdataError } from '../../src/config/index.js'

describe('definitiveFailureReason (what the mesh status calls failed)', () => {
  it.each([
    ['a refusal naming its reason', new MeshApiError('COORDINATOR_REFUSED', 'x', { reason: 'COORDINATOR_POLICY_NOT_FOUND' }), 'COORDINATOR_POLICY_NOT_FOUND'],
    ['rejected evidence', new MeshApiError('COORDINATOR_REFUSED', 'x', { reason: 'COORDINATOR_EVIDENCE_REJECTED' }), 'COORDINATOR_EVIDENCE_REJECTED'],
    ['an untrusted coordinator', new MeshApiError('COORDINATOR_UNTRUSTED', 'x', {}), 'COORDINATOR_UNTRUSTED'],
    ['our evidence reporting another config', new InitdataError('INITDATA_DIGEST_MISMATCH', 'x', {}), 'INITDATA_DIGEST_MISMATCH'],
    ['a reason that is not a code', new MeshApiError('COORDINATOR_REFUSED', 'x', { reason: 'no such thing\n' }), 'COORDINATOR_REFUSED'],
    ['a busy coordinator', new MeshApiError('COORDINATOR_REFUSED', 'x', { reason: 'COORDINATOR_BUSY' }), undefined],
    ['a lost nonce (coordinator restart)', new MeshApiError('COORDINATOR_REFUSED', 'x', { reason: 'COORDINATOR_NONCE_UNKNOWN' }), undefined],
    ['an unreachable coordinator', new MeshApiError('COORDINATOR_UNREACHABLE', 'x', {}), undefined],
    ['a foreign error', new Error('EIO'), undefined],
  ])('%s', (_name, err, want) => {
    expect(definitiveFailureReason(err)).toBe(want)
  })
})


describe('AttestedCertificates against a coordinator on loopback', () => {
  let coord: TestCoordinator
  let work: string
  const rootPin = () => ({ kind: 'root-ca' as const, sha256: coord.running.rootFingerprint })

  beforeAll(async () => {
    coord = await startTestCoordinator()
    work = await mkdtemp(join(tmpdir(), 'pmco-agent-'))
  })
  afterAll(async () => {
    await coord?.close()
    await removeState(coord.stateDir)
    await rm(work, { recursive: true, force: true })
  })

  const lifecycle = async (dir: string, opts: Partial<ConstructorParameters<typeof AttestedCertificates>[0]> = {}) =>
    new AttestedCertificates({
      address: coord.address,
      identity: { kind: 'policy-hash', hex: HOST_COORDINATOR },
      provider: await simulated(HOST_A),
      acceptSimulatedCoordinator: true,
      tlsDir: dir,
      log: testLog().log,
      callTimeoutMs: 5_000,
      ...opts,
    })

  it('obtains a chain for its own key and writes the Contrast layout (key 0400)', async () => {
    const dir = join(work, 'ok')
    const got = await (await lifecycle(dir)).obtain()
    const { material, info } = await readTlsDir(dir)
    expect(info.serial).toBe(got.serial)
    // SANs: the manifest's, plus the peer address the coordinator saw.
    expect(info.sans).toBe('DNS:a.mesh.test, IP Address:127.0.0.1')
    expect(info.subject).toBe('CN=a.mesh.test')
    expect((await stat(join(dir, 'key.pem'))).mode & 0o777).toBe(0o400)
    // A's policy names a workload secret: Contrast's seed file sits next to tls-config.
    const seed = join(work, 'secrets', 'workload-secret-seed')
    expect(await readFile(seed, 'utf8')).toMatch(/^[0-9a-f]{64}$/)
    expect((await stat(seed)).mode & 0o777).toBe(0o400)
    const root = new X509Certificate(await readFile(join(dir, 'coordinator-root-ca.pem')))
    expect(createHash('sha256').update(root.raw).digest('hex')).toBe(coord.running.rootFingerprint)
    // leaf ‖ intermediate; the intermediate is the root's.
    const chain = splitPemCertificates(material.certChain)
    expect(chain).toHaveLength(2)
    expect(chain[1]!.verify(root.publicKey)).toBe(true)
    // Renewal at two thirds of the lifetime.
    const life = got.notAfter.getTime() - got.notBefore.getTime()
    expect(got.renewAt.getTime() - got.notBefore.getTime()).toBeCloseTo((life * 2) / 3, -1)
  })

  it('sends nothing when its own evidence does not report the measured config digest', async () => {
    // HOST_A is what the simulated report carries; a pod that booted another initdata
    // must refuse to present it.
    const other = new Uint8Array(Buffer.from('ee'.repeat(48), 'hex'))
    const err = await rejected((await lifecycle(join(work, 'digest'), { measuredConfigDigest: other })).obtain())
    expect(err).toMatchObject({ code: 'INITDATA_DIGEST_MISMATCH' })
    const same = new Uint8Array(Buffer.from(HOST_A, 'hex'))
    expect((await (await lifecycle(join(work, 'digest-ok'), { measuredConfigDigest: same })).obtain()).serial).toMatch(/^[0-9A-F]+$/)
  })

  it('checks the coordinator launch measurement when pinned (the simulation reports zeros)', async () => {
    const ok = await (await lifecycle(join(work, 'measured'), { coordinatorMeasurements: ['00'.repeat(48)] })).obtain()
    expect(ok.serial).toMatch(/^[0-9A-F]+$/)
    const err = await rejected((await lifecycle(join(work, 'mismeasured'), { coordinatorMeasurements: ['11'.repeat(48)] })).obtain())
    expect(err).toMatchObject({ code: 'COORDINATOR_UNTRUSTED', details: { step: 'evidence' } })
  })

  it('pins the coordinator by root CA fingerprint as well', async () => {
    const got = await (await lifecycle(join(work, 'root-pin'), { identity: rootPin() })).obtain()
    expect(got.serial).toMatch(/^[0-9A-F]+$/)
  })

  it.each([
    ['a wrong policy hash', { identity: { kind: 'policy-hash' as const, hex: 'dd'.repeat(32) } }, 'identity'],
    ['a wrong root fingerprint', { identity: { kind: 'root-ca' as const, sha256: '00'.repeat(32) } }, 'identity'],
    ['simulated coordinator evidence not accepted', { acceptSimulatedCoordinator: false }, 'evidence'],
  ])('refuses the coordinator on %s and writes nothing', async (_name, opts, step) => {
    const dir = join(work, `bad-${step}-${Math.random()}`)
    const err = await rejected((await lifecycle(dir, opts)).obtain())
    expect(err).toMatchObject({ code: 'COORDINATOR_UNTRUSTED', details: { step } })
    expect(await rejected(readTlsDir(dir))).toMatchObject({ code: 'PKI_MISSING_FILE' })
  })

  it('an unknown HOSTDATA is refused with PERMISSION_DENIED naming the hash', async () => {
    const lc = await lifecycle(join(work, 'unknown'), { provider: await simulated(HOST_UNKNOWN) })
    const err = await rejected(lc.obtain())
    expect(err).toMatchObject({
      code: 'COORDINATOR_REFUSED',
      details: { status: 'PERMISSION_DENIED', reason: 'COORDINATOR_POLICY_NOT_FOUND', method: 'NewMeshCert' },
    })
    expect(err.message).toContain(HOST_UNKNOWN)
  })

  it('an unreachable coordinator is COORDINATOR_UNREACHABLE', async () => {
    const lc = await lifecycle(join(work, 'down'), { address: '127.0.0.1:1' })
    expect(await rejected(lc.obtain())).toMatchObject({ code: 'COORDINATOR_UNREACHABLE' })
  })

  it('attempts leave no abort listeners behind on a long-lived signal (success and failure)', async () => {
    const signal = new AbortController().signal
    await (await lifecycle(join(work, 'listeners'))).obtain(signal)
    await rejected((await lifecycle(join(work, 'listeners-down'), { address: '127.0.0.1:1' })).obtain(signal))
    await rejected((await lifecycle(join(work, 'listeners-unknown'), { provider: await simulated(HOST_UNKNOWN) })).obtain(signal))
    expect(getEventListeners(signal, 'abort')).toHaveLength(0)
  })

  it('run() keeps retrying with backoff while refused, logging the reason once, and stops on abort', async () => {
    const { log, records } = testLog()
    const lc = new AttestedCertificates({
      address: coord.address,
      identity: { kind: 'policy-hash', hex: HOST_COORDINATOR },
      provider: await simulated(HOST_UNKNOWN),
      acceptSimulatedCoordinator: true,
      tlsDir: join(work, 'retry'),
      log,
      retryInitialMs: 20,
      retryMaxMs: 40,
      onDefinitiveFailure: (reason) => definitive.push(reason),
    })
    const definitive: string[] = []
    const abort = new AbortController()
    const done = lc.run(abort.signal)
    const deadline = Date.now() + 10_000
    while (lc.failures < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    abort.abort()
    await done
    expect(lc.failures).toBeGreaterThanOrEqual(3)
    // The refusal is what the mesh status reports as failed (the hook stops containers on it).
    expect(definitive.length).toBeGreaterThanOrEqual(3)
    expect(new Set(definitive)).toEqual(new Set(['COORDINATOR_POLICY_NOT_FOUND']))
    const warned = records.filter((r) => r['msg'] === 'cannot obtain a mesh certificate; the pod stays closed; retrying')
    // Same reason each time: warned once, then debug.
    expect(warned.filter((r) => r['level'] === 40)).toHaveLength(1)
    expect(warned[0]).toMatchObject({ code: 'COORDINATOR_REFUSED', reason: 'COORDINATOR_POLICY_NOT_FOUND' })
    expect(await rejected(readTlsDir(join(work, 'retry')))).toMatchObject({ code: 'PKI_MISSING_FILE' })
  })

  it('run() keeps retrying after a foreign error (here: the TLS directory cannot be created)', async () => {
    const { log, records } = testLog()
    const blocker = join(work, 'not-a-directory')
    await writeFile(blocker, 'x')
    const lc = await lifecycle(join(blocker, 'tls'), { log, retryInitialMs: 20, retryMaxMs: 40 })
    const abort = new AbortController()
    const done = lc.run(abort.signal)
    const deadline = Date.now() + 10_000
    while (lc.failures < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    abort.abort()
    await expect(done).resolves.toBeUndefined()
    expect(lc.failures).toBeGreaterThanOrEqual(2)
    expect(records.find((r) => r['msg'] === 'cannot obtain a mesh certificate; the pod stays closed; retrying')).toMatchObject({
      code: 'AGENT_ATTEMPT_FAILED',
    })
  })

  it('run() renews at two thirds of the lifetime with a fresh key', async () => {
    const short = await startTestCoordinator({ leafLifetimeMs: 1_500 })
    try {
      const dir = join(work, 'renew')
      const lc = new AttestedCertificates({
        address: short.address,
        identity: { kind: 'policy-hash', hex: HOST_COORDINATOR },
        provider: await simulated(HOST_A),
        acceptSimulatedCoordinator: true,
        tlsDir: dir,
        log: testLog().log,
      })
      const abort = new AbortController()
      const done = lc.run(abort.signal)
      const seen: string[] = []
      const keys = new Set<string>()
      const deadline = Date.now() + 10_000
      while (seen.length < 3 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50))
        const s = lc.current?.serial
        if (s !== undefined && !seen.includes(s)) {
          seen.push(s)
          keys.add(await readFile(join(dir, 'key.pem'), 'utf8'))
        }
      }
      abort.abort()
      await done
      expect(seen.length).toBeGreaterThanOrEqual(3)
      expect(keys.size).toBe(seen.length)
    } finally {
      await short.close()
      await removeState(short.stateDir)
    }
  })
})
