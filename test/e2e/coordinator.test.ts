// Attested mesh certificates end to end: the coordinator in its own namespace, pods A
// and B with simulated evidence obtaining their certificates from it, the mesh working
// on those certificates, an unknown pod staying closed, a coordinator restart, and a
// manifest update rotating the mesh CA under a long-lived stream.
// Order matters: later tests build on the coordinator and pods of earlier ones.
// Both data planes: with Envoy, the attested certificates reach it through the SDS files
// (coordinator -> daemon -> TLS directory -> SDS -> Envoy).

import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { APP_PORTS, B_INGRESS, DIST, MeshLab, type Daemon, type EchoApp } from '../../src/demo/index.js'
import { encodeInitdataBlock, initdataFromAnnotation } from '../../src/config/index.js'
import { splitPemCertificates } from '../../src/pki/index.js'
import { envoyForTests } from '../envoy-support.js'
import { requireNetns } from './netns.js'

const describeNetns = requireNetns()
const envoy = envoyForTests()
const marker = (tag: string): string => `${tag}-${randomBytes(6).toString('hex')}`

const HOST = { co: 'cc'.repeat(32), a: 'aa'.repeat(32), b: 'bb'.repeat(32), x: 'ee'.repeat(32) }
const LEAF_LIFETIME_MS = 6_000
const EGRESS_B = '127.137.0.1'
const A_EGRESS = `b#${EGRESS_B}:${APP_PORTS.mtls}#b.mesh.test:${APP_PORTS.mtls}`
const MESH_CN = 'CN=system:coordinator:intermediate'

function manifest(bSans: string[], extra: Record<string, { sans: string[] }> = {}): string {
  return JSON.stringify({
    policies: {
      [HOST.a]: { sans: ['a.mesh.test'] },
      [HOST.b]: { sans: bSans },
      ...extra,
    },
    acceptSimulated: true,
  })
}

// Without an Envoy binary its variant is skipped with that reason, except under CI=true,
// where envoyForTests() fails the run.
const planes = [
  { kind: 'builtin', prefix: 'pmco', subnet: 80, skip: undefined },
  { kind: 'envoy', prefix: 'pmcov', subnet: 90, skip: envoy.skip },
] as const

for (const plane of planes) {
  const suite = plane.skip === undefined ? describeNetns : describe.skip
  suite(`attested certificates from the coordinator, end to end, ${plane.kind} data plane${plane.skip === undefined ? '' : ` (skipped: ${plane.skip})`}`, () => {
    let lab: MeshLab
    let coordinator: Daemon
    let daemonA: Daemon
    let daemonB: Daemon
    let appB: EchoApp
    let appX: EchoApp
    let stateDir: string
    let manifestV1: string
    let updateKey: string
    let signingKey: string
    let address: string
    let rootFingerprint: string
    let initdata: { hostData: string; file: string }

    /**
     * The operator's path: a Pod with Contrast's annotations through `podvm-mesh initdata`,
     * which prints the digest for the coordinator's manifest and sets the annotation whose
     * document the guest receives on its initdata block device.
     */
    const initdataFor = async (coordinatorAddress: string): Promise<{ hostData: string; file: string }> => {
      const pod = join(lab.workDir, 'pod-i.yaml')
      await writeFile(
        pod,
        [
          'apiVersion: v1',
          'kind: Pod',
          'metadata:',
          '  name: i',
          '  annotations:',
          `    contrast.edgeless.systems/servicemesh-ingress: "public#${APP_PORTS.tls}#false"`,
          'spec:',
          '  runtimeClassName: contrast-cc',
          '  containers:',
          '    - name: app',
          '      image: example/app',
          '',
        ].join('\n'),
      )
      const out = join(lab.workDir, 'pod-i.out.yaml')
      const cli = await lab.topology.exec('co', process.execPath, [
        `${DIST}/cli.js`, 'initdata', pod, '--coordinator', coordinatorAddress, '--coordinator-identity', HOST.co, '--json', '--out', out,
      ])
      expect(cli.code).toBe(0)
      const [entry] = JSON.parse(cli.stdout) as { snpHostData: string }[]
      const annotation = /cc_init_data: (\S+)/.exec(await readFile(out, 'utf8'))![1]!
      const file = join(lab.workDir, 'initdata-i.img')
      await writeFile(file, encodeInitdataBlock(initdataFromAnnotation(annotation).bytes))
      return { hostData: entry!.snpHostData, file }
    }

    const tlsDir = (node: string): string => join(lab.workDir, 'tls', node)
    const coordinatorArgs = (): string[] => [
      '--state', stateDir,
      '--manifest', manifestV1,
      '--listen', '0.0.0.0:7777',
      '--update-key', updateKey,
      '--leaf-lifetime', `${LEAF_LIFETIME_MS}ms`,
      '--evidence', 'simulated',
      '--simulated-hostdata', HOST.co,
    ]
    const podArgs = (host: string): string[] => [
      '--coordinator', address,
      '--coordinator-identity', `policy:${HOST.co}`,
      '--evidence', 'simulated',
      '--simulated-hostdata', host,
    ]
    let starts = 0
    /** Each daemon its own Envoy work directory (a pod may boot twice in one run). */
    const dataplaneArgs = (node: string): string[] =>
      plane.kind === 'builtin'
        ? ['--dataplane', 'builtin']
        : ['--dataplane', 'envoy', '--envoy-bin', envoy.path ?? 'envoy', '--work-dir', join(lab.workDir, `envoy-${node}-${++starts}`)]
    const listening = (d: Daemon): Record<string, unknown>[] => d.records().filter((r) => r['msg'] === 'coordinator listening')
    const chainOf = async (node: string): Promise<X509Certificate[]> =>
      splitPemCertificates(await readFile(join(tlsDir(node), 'certChain.pem'), 'utf8'))
    const obtained = (d: Daemon): number => d.records().filter((r) => r['msg'] === 'mesh certificate obtained').length
    /**
     * Whether B's data plane presents the leaf the coordinator last wrote for B: a TLS
     * client (no client certificate) on B's #false port compares the served serial with
     * the file's, read before and after the connection (a renewal may land in between).
     * The data plane picks a new file up shortly after it is written (Envoy: SDS file
     * watch), hence a few bounded tries.
     */
    const servesCurrentLeafOfB = async (): Promise<boolean> => {
      for (let i = 0; i < 10; i++) {
        const before = (await chainOf('b'))[0]!.serialNumber
        const r = await lab.probe('a', { host: lab.node('b').ipv4, port: APP_PORTS.tls, marker: marker('SERIAL'), tls: {} })
        const after = (await chainOf('b'))[0]!.serialNumber
        const served = r.tls?.peerSerial?.toUpperCase()
        if (r.echoed && (served === before.toUpperCase() || served === after.toUpperCase())) return true
        await new Promise((res) => setTimeout(res, 300))
      }
      return false
    }

    beforeAll(async () => {
      lab = await MeshLab.create({
        prefix: plane.prefix,
        subnet: plane.subnet,
        nodes: ['co', 'a', 'b', 'x', 'i'],
        hosts: { co: ['coordinator.mesh.test'], a: ['a.mesh.test'], b: ['b.mesh.test'], x: ['x.mesh.test'], i: ['i.mesh.test'] },
      })
      address = `${lab.node('co').ipv4}:7777`
      initdata = await initdataFor(address)
      stateDir = join(lab.workDir, 'coordinator-state')
      manifestV1 = join(lab.workDir, 'manifest-v1.json')
      await writeFile(manifestV1, manifest(['b.mesh.test'], { [initdata.hostData]: { sans: ['i.mesh.test'] } }))
      const kp = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      updateKey = join(lab.workDir, 'update-key.pub.pem')
      signingKey = join(lab.workDir, 'update-key.pem')
      await writeFile(updateKey, kp.publicKey.export({ type: 'spki', format: 'pem' }))
      await writeFile(signingKey, kp.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
      await mkdir(join(lab.workDir, 'tls'), { recursive: true })

      coordinator = lab.startCoordinator('co', coordinatorArgs())
      await coordinator.waitReady()
      rootFingerprint = String(listening(coordinator)[0]!['rootFingerprint'])
      appB = await lab.startApp('b', { ports: [APP_PORTS.mtls, APP_PORTS.tls, APP_PORTS.plain] })
      daemonB = lab.startDaemon('b', ['--ingress', B_INGRESS, '--tls-dir', tlsDir('b'), ...dataplaneArgs('b'), ...podArgs(HOST.b)])
      daemonA = lab.startDaemon('a', ['--egress', A_EGRESS, '--tls-dir', tlsDir('a'), ...dataplaneArgs('a'), ...podArgs(HOST.a)])
      await Promise.all([daemonA.waitReady(), daemonB.waitReady()])
    }, 90_000)

    afterAll(async () => {
      await lab?.destroy()
    }, 60_000)

    it('A and B hold coordinator-issued certificates: manifest SANs plus the pod IP, leaf ‖ intermediate under the root', async () => {
      const chainB = await chainOf('b')
      // What the guest hook waits for (A and B share this directory's parent here).
      expect(await readFile(join(lab.workDir, 'tls', 'mesh-status'), 'utf8')).toBe('ready\n')
      expect(chainB).toHaveLength(2)
      expect(chainB[0]!.subject).toBe('CN=b.mesh.test')
      expect(chainB[0]!.subjectAltName).toBe(`DNS:b.mesh.test, IP Address:${lab.node('b').ipv4}`)
      expect(chainB[0]!.issuer).toBe(MESH_CN)
      const root = new X509Certificate(await readFile(join(tlsDir('b'), 'coordinator-root-ca.pem')))
      expect(chainB[1]!.verify(root.publicKey)).toBe(true)
      expect(root.fingerprint256.replaceAll(':', '').toLowerCase()).toBe(rootFingerprint)
      expect((await chainOf('a'))[0]!.subject).toBe('CN=a.mesh.test')
    })

    it(`the ${plane.kind} data plane serves them: B's TLS port presents B's coordinator-issued leaf`, async () => {
      for (const d of [daemonA, daemonB]) {
        expect(d.records().find((r) => r['msg'] === 'data plane chosen')).toMatchObject({ dataplane: plane.kind })
        if (plane.kind === 'envoy') expect(d.records().some((r) => r['msg'] === 'envoy live')).toBe(true)
      }
      expect(await servesCurrentLeafOfB()).toBe(true)
    })

    it("A's app reaches B's app through A's egress on those certificates", async () => {
      const m = marker('A-TO-B')
      const r = await lab.probe('a', { host: EGRESS_B, port: APP_PORTS.mtls, marker: m })
      expect(r).toMatchObject({ connected: true, echoed: true })
      expect(appB.sawMarker(m)).toBe(true)
    })

    it('a pod booted from initdata takes its config and coordinator pin from it; the coordinator knows it by the printed digest', async () => {
      const appI = await lab.startApp('i', { ports: [APP_PORTS.mtls, APP_PORTS.tls] })
      const daemonI = lab.startDaemon('i', ['--initdata', initdata.file, '--evidence', 'simulated', '--tls-dir', tlsDir('i'), ...dataplaneArgs('i')])
      try {
        await daemonI.waitReady()
        const started = daemonI.records().find((r) => r['msg'] === 'starting')!
        expect(started).toMatchObject({ from: 'initdata', config: { ingress: { rules: [{ port: APP_PORTS.tls, mode: 'tls' }] } } })
        expect((await chainOf('i'))[0]!.subject).toBe('CN=i.mesh.test')
        // The measured #false exception is in force: TLS without a client certificate reaches 8443 ...
        const m = marker('TO-I-8443')
        const open = await lab.probe('x', { host: lab.node('i').ipv4, port: APP_PORTS.tls, marker: m, tls: {} })
        expect(open.echoed).toBe(true)
        expect(appI.sawMarker(m)).toBe(true)
        // ... and 8080 still requires a mesh client certificate.
        const closed = marker('TO-I-8080')
        await lab.probe('x', { host: lab.node('i').ipv4, port: APP_PORTS.mtls, marker: closed, tls: {}, timeoutMs: 2_500 })
        expect(appI.sawMarker(closed)).toBe(false)
      } finally {
        daemonI.kill('SIGKILL')
        appI.kill('SIGKILL')
        await Promise.all([daemonI.exited, appI.exited])
      }
    }, 40_000)

    it('a pod whose HOSTDATA is not in the manifest gets PERMISSION_DENIED and stays closed', async () => {
      appX = await lab.startApp('x', { ports: [APP_PORTS.mtls] })
      // X's own guest layout, so its mesh status (what the guest hook reads) is its own.
      const tlsX = join(lab.workDir, 'x', 'contrast', 'tls-config')
      const daemonX = lab.startDaemon('x', ['--ingress', '', '--tls-dir', tlsX, ...dataplaneArgs('x'), ...podArgs(HOST.x)])
      const refused = await daemonX.waitFor((l) => l.includes('COORDINATOR_POLICY_NOT_FOUND'), 20_000, 'X to be refused')
      const rec = JSON.parse(refused) as Record<string, unknown>
      expect(rec).toMatchObject({ msg: 'cannot obtain a mesh certificate; the pod stays closed; retrying', reason: 'COORDINATOR_POLICY_NOT_FOUND' })
      expect(JSON.stringify(rec)).toContain('PERMISSION_DENIED')
      expect(JSON.stringify(rec)).toContain(HOST.x)
      // Still retrying (the coordinator keeps refusing it), never ready, nothing reaches X's app from outside.
      const refusedX = (): number =>
        coordinator.records().filter((r) => r['code'] === 'COORDINATOR_POLICY_NOT_FOUND' && JSON.stringify(r['details']).includes(HOST.x)).length
      const deadline = Date.now() + 20_000
      while (refusedX() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
      expect(refusedX()).toBeGreaterThanOrEqual(3)
      expect(daemonX.records().some((r) => r['msg'] === 'ready')).toBe(false)
      // The guest hook would stop every container of this pod: the refusal is definitive.
      expect(await readFile(join(lab.workDir, 'x', 'contrast', 'mesh-status'), 'utf8')).toBe('failed COORDINATOR_POLICY_NOT_FOUND\n')
      const m = marker('TO-X')
      const r = await lab.probe('a', { host: lab.node('x').ipv4, port: APP_PORTS.mtls, marker: m, timeoutMs: 2_000 })
      expect(r.echoed).toBe(false)
      expect(appX.sawMarker(m)).toBe(false)
      daemonX.kill('SIGKILL')
      await daemonX.exited
    }, 60_000)

    it('a coordinator restart keeps the same root; the mesh keeps working while it is down, a pod booting meanwhile stays closed until it is back', async () => {
      coordinator.kill('SIGTERM')
      expect(await coordinator.exited).toBe(0)
      const m = marker('COORD-DOWN')
      expect((await lab.probe('a', { host: EGRESS_B, port: APP_PORTS.mtls, marker: m })).echoed).toBe(true)

      // X boots (with a HOSTDATA the manifest knows) while the coordinator is down.
      const late = lab.startDaemon('x', ['--ingress', 'public#8080#false', '--tls-dir', tlsDir('x2'), ...dataplaneArgs('x'), ...podArgs(HOST.a)])
      const down = JSON.parse(await late.waitFor((l) => l.includes('COORDINATOR_UNREACHABLE'), 20_000, 'X to find the coordinator down')) as Record<string, unknown>
      expect(down).toMatchObject({ level: 'warn', msg: 'cannot obtain a mesh certificate; the pod stays closed; retrying' })
      const early = marker('X-EARLY')
      expect((await lab.probe('a', { host: lab.node('x').ipv4, port: APP_PORTS.mtls, marker: early, tls: {}, timeoutMs: 2_000 })).echoed).toBe(false)
      expect(appX.sawMarker(early)).toBe(false)

      coordinator = lab.startCoordinator('co', coordinatorArgs())
      await coordinator.waitReady()
      await late.waitReady(30_000)
      // Once certified, the #false port takes TLS without a client certificate.
      expect((await lab.probe('a', { host: lab.node('x').ipv4, port: APP_PORTS.mtls, marker: marker('X-LATE'), tls: {} })).echoed).toBe(true)
      late.kill('SIGKILL')
      await late.exited
      expect(listening(coordinator)[0]).toMatchObject({ created: false, rootFingerprint })
      // Both pods renew against the restarted coordinator.
      const [a0, b0] = [obtained(daemonA), obtained(daemonB)]
      await daemonA.waitFor(() => obtained(daemonA) > a0, 15_000, 'A to renew')
      await daemonB.waitFor(() => obtained(daemonB) > b0, 15_000, 'B to renew')
      const root = new X509Certificate(await readFile(join(tlsDir('a'), 'coordinator-root-ca.pem')))
      expect(root.fingerprint256.replaceAll(':', '').toLowerCase()).toBe(rootFingerprint)
      expect((await lab.probe('a', { host: EGRESS_B, port: APP_PORTS.mtls, marker: marker('COORD-BACK') })).echoed).toBe(true)
    }, 60_000)

    it('a manifest update rotates the mesh CA; A -> B keeps working across renewal and a long-lived stream survives', async () => {
      const oldCa = splitPemCertificates(await readFile(join(tlsDir('b'), 'mesh-ca.pem'), 'utf8'))[0]!
      const holdMs = 3 * LEAF_LIFETIME_MS
      const stream = lab.probe('a', { host: EGRESS_B, port: APP_PORTS.mtls, marker: marker('STREAM'), holdMs, timeoutMs: holdMs + 10_000 })
      await new Promise((r) => setTimeout(r, 1_000))

      const v2 = join(lab.workDir, 'manifest-v2.json')
      await writeFile(v2, manifest(['b.mesh.test', 'b2.mesh.test']))
      const set = await lab.topology.exec('co', process.execPath, [
        join(DIST, 'cli.js'), 'coordinator', 'set-manifest',
        '--coordinator', '127.0.0.1:7777', '--manifest', v2, '--current', manifestV1, '--generation', '0', '--signing-key', signingKey,
      ])
      expect(set.stderr).toBe('')
      expect(set.code).toBe(0)
      const update = coordinator.records().find((r) => r['msg'] === 'manifest updated; new mesh CA announced')
      expect(update).toBeDefined()

      // Both pods end up with leaves from the new mesh CA, trusting it and (still) the old one.
      const fromNewCa = async (node: string): Promise<boolean> => {
        const leaf = (await chainOf(node))[0]!
        return !leaf.verify(oldCa.publicKey)
      }
      const deadline = Date.now() + 4 * LEAF_LIFETIME_MS
      while (Date.now() < deadline && !((await fromNewCa('a')) && (await fromNewCa('b')))) await new Promise((r) => setTimeout(r, 250))
      expect(await fromNewCa('a')).toBe(true)
      expect(await fromNewCa('b')).toBe(true)
      const bundleB = splitPemCertificates(await readFile(join(tlsDir('b'), 'mesh-ca.pem'), 'utf8'))
      expect(bundleB.map((c) => c.fingerprint256)).toContain(oldCa.fingerprint256)
      expect(bundleB).toHaveLength(2)
      const leafB = (await chainOf('b'))[0]!
      expect(leafB.subjectAltName).toBe(`DNS:b.mesh.test, DNS:b2.mesh.test, IP Address:${lab.node('b').ipv4}`)
      expect(leafB.verify(bundleB.find((c) => c.fingerprint256 !== oldCa.fingerprint256)!.publicKey)).toBe(true)

      // New connections work on the new leaves; the stream opened before the update held throughout.
      const m = marker('AFTER-ROTATION')
      expect((await lab.probe('a', { host: EGRESS_B, port: APP_PORTS.mtls, marker: m })).echoed).toBe(true)
      expect(appB.sawMarker(m)).toBe(true)
      expect(await servesCurrentLeafOfB()).toBe(true)
      const held = await stream
      expect(held.error).toBeUndefined()
      expect(held.heartbeats).toBeGreaterThanOrEqual(Math.floor(holdMs / 1_000) - 1)
      // The daemons never left ready: no failure in either log.
      for (const d of [daemonA, daemonB]) expect(d.records().some((r) => r['to'] === 'failed')).toBe(false)
    }, 90_000)

    it('the coordinator refuses a replayed nonce and evidence bound to another key (seen in its log as refusals)', async () => {
      // Driven over the wire from A's namespace by a small client script against the built tree.
      const script = `
        import { connectMeshApi, evidenceToWire } from '${DIST}/meshapi/index.js'
        import { SimulatedProvider, bindReportData } from '${DIST}/attestation/index.js'
        import { generateKeyPair } from '${DIST}/pki/index.js'
        import { randomBytes } from 'node:crypto'
        const conn = await connectMeshApi(process.argv[1])
        const spki = async () => new Uint8Array(await crypto.subtle.exportKey('spki', (await generateKeyPair()).keys.publicKey))
        const sim = await SimulatedProvider.create({ hostData: Buffer.from(process.argv[2], 'hex') })
        const out = {}
        const attempt = async (req) => { try { await conn.newMeshCert(req); return 'issued' } catch (e) { return e.details.reason } }
        let ch = await conn.challenge({ ClientNonce: randomBytes(32) })
        let key = await spki()
        const req = { Nonce: ch.Nonce, PublicKey: key, Evidence: evidenceToWire(await sim.getEvidence(bindReportData(key, ch.Nonce))) }
        out.first = await attempt(req)
        out.replayed = await attempt(req)
        ch = await conn.challenge({ ClientNonce: randomBytes(32) })
        const other = await spki()
        out.otherKey = await attempt({ Nonce: ch.Nonce, PublicKey: await spki(), Evidence: evidenceToWire(await sim.getEvidence(bindReportData(other, ch.Nonce))) })
        conn.close()
        console.log(JSON.stringify(out))
      `
      const r = await lab.topology.exec('a', process.execPath, ['--input-type=module', '-e', script, address, HOST.a], { timeoutMs: 30_000 })
      expect(r.stderr).toBe('')
      expect(JSON.parse(r.stdout)).toEqual({ first: 'issued', replayed: 'COORDINATOR_NONCE_REPLAYED', otherKey: 'COORDINATOR_BINDING_MISMATCH' })
      const refusals = coordinator.records().filter((x) => typeof x['msg'] === 'string' && (x['msg'] as string).startsWith('NewMeshCert refused'))
      expect(refusals.map((x) => x['code'])).toEqual(expect.arrayContaining(['COORDINATOR_NONCE_REPLAYED', 'COORDINATOR_BINDING_MISMATCH']))
    }, 40_000)
  })
}
