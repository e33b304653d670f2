// A mixed mesh, as during a migration: one pod still runs Contrast's sidecar (real Envoy
// with the bootstrap Contrast generates, Contrast's iptables TPROXY rules, its static
// certificate files: test/e2e/contrast-sidecar.ts), the other runs our daemon with the same
// Contrast-format env, for each of our data planes. Both pods hold certificates from one
// mesh CA with the profile of Contrast's coordinator. Real bytes through real kernels, and
// a capture on the Contrast pod's veth for what the wire shows.
//
// Certificates come from the lab's PKI set to the profile of Contrast's coordinator,
// written as files, not from our coordinator: Contrast's initializer gets its certificate
// from Contrast's coordinator over aTLS, which ours does not serve, and our daemon does not
// speak aTLS to Contrast's. A shared mesh CA is what a mixed mesh needs and neither
// coordinator provides today; the test assumes one and checks what follows from it.
//
//   ctr  Contrast pod "contrast-web": app on 8080 (mTLS), 8443 (#false), 7890 (#true);
//        egress mesh 127.137.0.1:18080 -> mesh-api:8080, meshtls 127.137.0.2:18443 ->
//        mesh-api:8443, misnamed 127.137.0.3:18080 -> mesh-api-svc:8080 (resolves to pm,
//        not a name in pm's certificate); admin 9901 (as Contrast's e2e sets it)
//   pm   podvm-mesh pod "mesh-api": the same ports; egress contrast 127.137.1.1:18080 ->
//        contrast-web:8080, contrasttls 127.137.1.2:18443 -> contrast-web:8443, wrong
//        127.137.1.3:18080 -> contrast-web-svc:8080 (resolves to ctr, not a name in its
//        certificate), anymember 127.137.1.6:18080 -> the same, opted out of secure naming
//   pmt  podvm-mesh pod "mesh-client" with transparent egress (no entries, ingress
//        DISABLED), started by its own test

import { randomBytes, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { accessSync, constants } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MeshLab, type Daemon, type EchoApp, type LabPkiOptions } from '../../src/demo/index.js'
import { splitPemCertificates } from '../../src/pki/index.js'
import { envoyForTests } from '../envoy-support.js'
import { IPTABLES, startContrastSidecar, type ContrastSidecar, type ContrastSidecarEnv } from './contrast-sidecar.js'
import { requireNetns } from './netns.js'
import { tlsFlows, type TlsFlow } from './tls-wire.js'

const describeNetns = requireNetns()
const envoy = envoyForTests()

/** Contrast's pod needs iptables (scripts/setup.sh installs it); under CI=true its absence fails the run. */
function iptablesSkipReason(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    try {
      accessSync(join(dir, IPTABLES), constants.X_OK)
      return undefined
    } catch {
      // next
    }
  }
  const reason = `no ${IPTABLES} on PATH (scripts/setup.sh installs the iptables package)`
  if (process.env.CI === 'true') throw new Error(`the Contrast peer test requires ${IPTABLES} under CI=true: ${reason}`)
  return reason
}
const iptablesSkip = iptablesSkipReason()

const PORTS = { mtls: 8080, tls: 8443, plain: 7890 } as const
/** The apps listen on all addresses, so an egress listener needs a port of its own. */
const EGRESS_PORTS = { mtls: 18080, tls: 18443 } as const
const INGRESS = `web#${PORTS.tls}#false##plain#${PORTS.plain}#true`
// Each pod also answers to a Service name (a host name resolving to the pod), which its
// Contrast-issued certificate does not carry: `contrast generate` puts the workload name
// into the manifest's SANs, and the coordinator adds the pod IP, nothing else.
const HOSTS = { ctr: ['contrast-web', 'contrast-web-svc'], pm: ['mesh-api', 'mesh-api-svc'], pmt: ['mesh-client'] } as const
const CTR_EGRESS = { mesh: '127.137.0.1', meshTls: '127.137.0.2', misnamed: '127.137.0.3', wire: '127.137.0.4', wireTls: '127.137.0.5' } as const
const PM_EGRESS = { contrast: '127.137.1.1', contrastTls: '127.137.1.2', wrong: '127.137.1.3', wire: '127.137.1.4', wireTls: '127.137.1.5', anyMember: '127.137.1.6' } as const
const CONTRAST_ENV: ContrastSidecarEnv = {
  CONTRAST_INGRESS_PROXY_CONFIG: INGRESS,
  CONTRAST_EGRESS_PROXY_CONFIG: [
    `mesh#${CTR_EGRESS.mesh}:${EGRESS_PORTS.mtls}#mesh-api:${PORTS.mtls}`,
    `meshtls#${CTR_EGRESS.meshTls}:${EGRESS_PORTS.tls}#mesh-api:${PORTS.tls}`,
    `misnamed#${CTR_EGRESS.misnamed}:${EGRESS_PORTS.mtls}#mesh-api-svc:${PORTS.mtls}`,
    // Used by the wire test alone: Envoy keeps TLS sessions per cluster, and only a
    // cluster's first connection shows a full handshake (certificates) on the wire.
    `wire#${CTR_EGRESS.wire}:${EGRESS_PORTS.mtls}#mesh-api:${PORTS.mtls}`,
    `wiretls#${CTR_EGRESS.wireTls}:${EGRESS_PORTS.tls}#mesh-api:${PORTS.tls}`,
  ].join('##'),
  CONTRAST_ADMIN_PORT: '9901',
}
const OUR_ENV = {
  CONTRAST_INGRESS_PROXY_CONFIG: INGRESS,
  CONTRAST_EGRESS_PROXY_CONFIG: [
    `contrast#${PM_EGRESS.contrast}:${EGRESS_PORTS.mtls}#contrast-web:${PORTS.mtls}`,
    `contrasttls#${PM_EGRESS.contrastTls}:${EGRESS_PORTS.tls}#contrast-web:${PORTS.tls}`,
    `wrong#${PM_EGRESS.wrong}:${EGRESS_PORTS.mtls}#contrast-web-svc:${PORTS.mtls}`,
    // The same Service name, opted out of secure naming (Contrast's behaviour) below.
    `anymember#${PM_EGRESS.anyMember}:${EGRESS_PORTS.mtls}#contrast-web-svc:${PORTS.mtls}`,
    `wire#${PM_EGRESS.wire}:${EGRESS_PORTS.mtls}#contrast-web:${PORTS.mtls}`,
    `wiretls#${PM_EGRESS.wireTls}:${EGRESS_PORTS.tls}#contrast-web:${PORTS.tls}`,
  ].join('##'),
  PODVM_MESH_EGRESS_MESH_CA_ONLY: 'anymember',
}
/**
 * The claims Contrast's coordinator copies from a pod's SNP report into its mesh leaf:
 * 46 non-critical extensions under 1.3.9901.2.1 (integers, booleans, and the report's byte
 * fields at their sizes), plus the workload secret id (1.3.9901.3.1). Peers must ignore
 * them; what matters here is that real leaves carry them (about 2 KiB more per leaf).
 */
function contrastClaimExtensions(): { oid: string; critical: boolean; der: Uint8Array }[] {
  const BOOLEANS = new Set([5, 6, 7, 8, 16, 17, 18, 19])
  const BYTES: Record<number, number> = { 9: 16, 10: 16, 21: 64, 22: 48, 23: 32, 24: 48, 25: 48, 26: 32, 27: 32, 32: 64 }
  const out = []
  for (let i = 1; i <= 46; i++) {
    const n = BYTES[i]
    const der = BOOLEANS.has(i) ? [0x01, 0x01, 0x00] : n !== undefined ? [0x04, n, ...randomBytes(n)] : [0x02, 0x01, i % 8]
    out.push({ oid: `1.3.9901.2.1.${i}`, critical: false, der: Uint8Array.from(der) })
  }
  const id = Buffer.from('apps/v1/Deployment/default/contrast-web')
  out.push({ oid: '1.3.9901.3.1', critical: false, der: Uint8Array.from([0x0c, id.length, ...id]) })
  return out
}

/** Contrast's coordinator: P-384 root and mesh CA under its names, one-year leaves (P-256 keys) with claims. */
const CONTRAST_PKI: LabPkiOptions = {
  caCurve: 'P-384',
  rootName: 'system:coordinator:root',
  meshCaName: 'system:coordinator:intermediate',
  leafLifetimeMs: 365 * 24 * 60 * 60 * 1000,
  leafExtensions: contrastClaimExtensions(),
}
const marker = (tag: string): string => `${tag}-${randomBytes(6).toString('hex')}`
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 150))

const planes = [
  { kind: 'builtin', prefix: 'pmctb', subnet: 94 },
  { kind: 'envoy', prefix: 'pmctv', subnet: 95 },
] as const

// Contrast's side is real Envoy for both of our data planes.
const skip = envoy.skip ?? iptablesSkip

for (const plane of planes) {
  const suite = skip === undefined ? describeNetns : describe.skip
  suite(`mixed mesh with a Contrast sidecar pod, our ${plane.kind} data plane${skip === undefined ? '' : ` (skipped: ${skip})`}`, () => {
    let lab: MeshLab
    let contrast: ContrastSidecar
    let daemon: Daemon
    let appCtr: EchoApp
    let appPm: EchoApp
    let ctrIp: string
    let pmIp: string

    const dataplaneArgs = (): string[] =>
      plane.kind === 'builtin'
        ? ['--dataplane', 'builtin']
        : ['--dataplane', 'envoy', '--envoy-bin', envoy.path ?? 'envoy', '--work-dir', `${lab.workDir}/envoy-pm-${Date.now()}`]

    /** Our daemon's Prometheus counter `podvm_mesh_failures_total{reason}`. */
    const failures = async (reason: string): Promise<number> => {
      const script = "fetch('http://127.0.0.1:15020/metrics').then(async (r) => console.log(await r.text()))"
      const out = (await lab.topology.exec('pm', process.execPath, ['-e', script])).stdout
      const m = new RegExp(`^podvm_mesh_failures_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(out)
      return m === null ? 0 : Number(m[1])
    }

    beforeAll(async () => {
      lab = await MeshLab.create({ prefix: plane.prefix, subnet: plane.subnet, nodes: ['ctr', 'pm', 'pmt'], hosts: HOSTS }, CONTRAST_PKI)
      ctrIp = lab.node('ctr').ipv4
      pmIp = lab.node('pm').ipv4
      // Contrast's leaf SANs: the workload name from the manifest, then the pod IP the
      // coordinator saw (IPv4: Contrast's pods are IPv4-only).
      await lab.pki.issue('ctr', ['contrast-web', ctrIp])
      await lab.pki.issue('pm', ['mesh-api', pmIp])
      appCtr = await lab.startApp('ctr', { ports: [PORTS.mtls, PORTS.tls, PORTS.plain] })
      appPm = await lab.startApp('pm', { ports: [PORTS.mtls, PORTS.tls, PORTS.plain] })
      contrast = await startContrastSidecar(lab, 'ctr', CONTRAST_ENV, { envoyPath: envoy.path ?? 'envoy', tlsDir: lab.pki.tlsDir('ctr') })
      daemon = lab.startDaemon('pm', ['--tls-dir', lab.pki.tlsDir('pm'), ...dataplaneArgs()], OUR_ENV)
      await daemon.waitReady()
    }, 90_000)

    afterAll(async () => {
      await lab?.destroy()
    }, 60_000)

    it("both pods hold Contrast's PKI profile: P-384 mesh CA, P-256 leaf with claims, certChain = leaf ‖ intermediate, DNS SAN workload first, pod IP", () => {
      for (const [node, name, ip] of [['ctr', 'contrast-web', ctrIp], ['pm', 'mesh-api', pmIp]] as const) {
        const dir = lab.pki.tlsDir(node)
        const ca = new X509Certificate(readFileSync(join(dir, 'mesh-ca.pem')))
        const [leaf, intermediate, ...rest] = splitPemCertificates(readFileSync(join(dir, 'certChain.pem'), 'utf8'))
        expect(rest).toEqual([])
        expect(ca.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1')
        expect(ca.subject).toBe('CN=system:coordinator:intermediate')
        expect(leaf!.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
        expect(leaf!.subjectAltName).toBe(`DNS:${name}, IP Address:${ip}`)
        expect(leaf!.verify(ca.publicKey)).toBe(true)
        expect(leaf!.raw.includes(Buffer.from('apps/v1/Deployment/default/contrast-web'))).toBe(true)
        // The intermediate: the mesh CA's key, certified by the root.
        expect(intermediate!.subject).toBe(ca.subject)
        expect(intermediate!.issuer).toBe('CN=system:coordinator:root')
        expect(intermediate!.publicKey.equals(ca.publicKey)).toBe(true)
      }
    })

    it("Contrast's app -> its egress listener -> our ingress (mTLS) -> our app: bytes echo, 4 MiB checksum holds", async () => {
      const m = marker('CTR-TO-PM')
      const r = await lab.probe('ctr', { host: CTR_EGRESS.mesh, port: EGRESS_PORTS.mtls, marker: m })
      expect(r).toMatchObject({ connected: true, echoed: true })
      expect(appPm.sawMarker(m)).toBe(true)
      const bulk = await lab.probe('ctr', { host: CTR_EGRESS.mesh, port: EGRESS_PORTS.mtls, bulkBytes: 4 * 1024 * 1024, timeoutMs: 30_000 })
      expect(bulk.error).toBeUndefined()
      expect(bulk.received).toBe(4 * 1024 * 1024)
      expect(bulk.sha256Received).toBe(bulk.sha256Sent)
    }, 40_000)

    it("Contrast's app -> its egress listener -> our #false port (TLS, no client certificate asked) -> our app", async () => {
      const m = marker('CTR-TO-PM-8443')
      const r = await lab.probe('ctr', { host: CTR_EGRESS.meshTls, port: EGRESS_PORTS.tls, marker: m })
      expect(r.echoed).toBe(true)
      expect(appPm.sawMarker(m)).toBe(true)
    })

    it("our app -> our egress entry -> Contrast's ingress (15006, mTLS) -> its app: bytes echo, 4 MiB checksum holds", async () => {
      const m = marker('PM-TO-CTR')
      const r = await lab.probe('pm', { host: PM_EGRESS.contrast, port: EGRESS_PORTS.mtls, marker: m })
      expect(r).toMatchObject({ connected: true, echoed: true })
      expect(appCtr.sawMarker(m)).toBe(true)
      const bulk = await lab.probe('pm', { host: PM_EGRESS.contrast, port: EGRESS_PORTS.mtls, bulkBytes: 4 * 1024 * 1024, timeoutMs: 30_000 })
      expect(bulk.error).toBeUndefined()
      expect(bulk.received).toBe(4 * 1024 * 1024)
      expect(bulk.sha256Received).toBe(bulk.sha256Sent)
    }, 40_000)

    it("our app -> our egress entry -> Contrast's #false port (15007) -> its app", async () => {
      const m = marker('PM-TO-CTR-8443')
      const r = await lab.probe('pm', { host: PM_EGRESS.contrastTls, port: EGRESS_PORTS.tls, marker: m })
      expect(r.echoed).toBe(true)
      expect(appCtr.sawMarker(m)).toBe(true)
    })

    // The intended difference: Contrast authenticates "a member of the mesh", we also
    // authenticate the name dialled (secure naming). Against a Contrast peer this holds on
    // our side only; Contrast's sidecar keeps accepting any mesh member, by design. For a
    // migration it matters: an app that dials a Contrast pod by its Service name is refused
    // unless the Contrast manifest's SANs carry that name, or the entry is meshCaOnly.
    it('secure naming: our egress refuses the Contrast pod under a name its certificate lacks (SAN_MISMATCH); Contrast would accept it', async () => {
      const before = await failures('SAN_MISMATCH')
      const m = marker('PM-WRONG-NAME')
      const r = await lab.probe('pm', { host: PM_EGRESS.wrong, port: EGRESS_PORTS.mtls, marker: m, timeoutMs: 3_000 })
      await settle()
      expect(r.echoed).toBe(false)
      expect(appCtr.sawMarker(m)).toBe(false)
      expect(await failures('SAN_MISMATCH')).toBeGreaterThan(before)
      if (plane.kind === 'builtin') expect(JSON.stringify(daemon.records())).toContain('SAN_MISMATCH')
      // Contrast's side, in the mirror situation: mesh-api-svc resolves to our pod, whose
      // certificate names mesh-api only. Contrast's egress checks the CA alone and connects.
      const c = marker('CTR-MISNAMED')
      const rc = await lab.probe('ctr', { host: CTR_EGRESS.misnamed, port: EGRESS_PORTS.mtls, marker: c })
      expect(rc.echoed).toBe(true)
      expect(appPm.sawMarker(c)).toBe(true)
    })

    it("an entry opted out of secure naming (PODVM_MESH_EGRESS_MESH_CA_ONLY) behaves as Contrast's: the Service name connects, with a warning", async () => {
      const m = marker('PM-ANY-MEMBER')
      const r = await lab.probe('pm', { host: PM_EGRESS.anyMember, port: EGRESS_PORTS.mtls, marker: m })
      expect(r.echoed).toBe(true)
      expect(appCtr.sawMarker(m)).toBe(true)
      const warned = daemon.records().filter((rec) => rec['level'] === 'warn' && String(rec['msg']).includes('secure naming is off for egress "anymember"'))
      expect(warned).toHaveLength(1)
    })

    it('#true ports are not redirected on either side: plaintext from the other pod reaches the app; other ports take no plaintext', async () => {
      const toCtr = marker('PM-PLAIN-7890')
      const toPm = marker('CTR-PLAIN-7890')
      expect((await lab.probe('pm', { host: ctrIp, port: PORTS.plain, marker: toCtr })).echoed).toBe(true)
      expect((await lab.probe('ctr', { host: pmIp, port: PORTS.plain, marker: toPm })).echoed).toBe(true)
      expect(appCtr.sawMarker(toCtr)).toBe(true)
      expect(appPm.sawMarker(toPm)).toBe(true)
      // Plaintext to the mTLS and #false ports is delivered on neither side.
      for (const port of [PORTS.mtls, PORTS.tls]) {
        const a = marker(`PM-PLAIN-${port}`)
        const b = marker(`CTR-PLAIN-${port}`)
        const ra = await lab.probe('pm', { host: ctrIp, port, marker: a, timeoutMs: 2_500 })
        const rb = await lab.probe('ctr', { host: pmIp, port, marker: b, timeoutMs: 2_500 })
        await settle()
        expect([ra.echoed, rb.echoed]).toEqual([false, false])
        expect([appCtr.sawMarker(a), appPm.sawMarker(b)]).toEqual([false, false])
      }
    })

    it('#false ports take TLS without a client certificate on both sides; the mTLS port does not', async () => {
      const a = marker('PM-NOCERT-8443')
      const b = marker('CTR-NOCERT-8443')
      expect((await lab.probe('pm', { host: ctrIp, port: PORTS.tls, marker: a, tls: {} })).echoed).toBe(true)
      expect((await lab.probe('ctr', { host: pmIp, port: PORTS.tls, marker: b, tls: {} })).echoed).toBe(true)
      expect([appCtr.sawMarker(a), appPm.sawMarker(b)]).toEqual([true, true])
      const c = marker('PM-NOCERT-8080')
      const d = marker('CTR-NOCERT-8080')
      const rc = await lab.probe('pm', { host: ctrIp, port: PORTS.mtls, marker: c, tls: {}, timeoutMs: 2_500 })
      const rd = await lab.probe('ctr', { host: pmIp, port: PORTS.mtls, marker: d, tls: {}, timeoutMs: 2_500 })
      await settle()
      expect([rc.echoed, rd.echoed]).toEqual([false, false])
      expect([appCtr.sawMarker(c), appPm.sawMarker(d)]).toEqual([false, false])
    })

    it("transparent egress to a Contrast pod: its pod IP is an IP SAN of its certificate, so the wrap verifies; an allow-listed #true port stays plaintext", async () => {
      const pmt = lab.node('pmt')
      await lab.pki.issue('pmt', ['mesh-client', pmt.ipv4])
      const client = lab.startDaemon('pmt', [
        '--ingress', 'DISABLED',
        '--transparent-egress',
        // Contrast's #true port takes plaintext only: a peer's exempt ports must be allow-listed.
        '--allow-plaintext', `${ctrIp}/32:${PORTS.plain}`,
        '--tls-dir', lab.pki.tlsDir('pmt'),
        ...(plane.kind === 'builtin' ? ['--dataplane', 'builtin'] : ['--dataplane', 'envoy', '--envoy-bin', envoy.path ?? 'envoy', '--work-dir', `${lab.workDir}/envoy-pmt`]),
      ])
      try {
        await client.waitReady()
        const capture = await lab.capture('pmt')
        const wrapped = marker('PMT-WRAPPED-8080')
        const wrappedTls = marker('PMT-WRAPPED-8443')
        const plain = marker('PMT-PLAIN-7890')
        const r = [
          await lab.probe('pmt', { host: ctrIp, port: PORTS.mtls, marker: wrapped }),
          await lab.probe('pmt', { host: ctrIp, port: PORTS.tls, marker: wrappedTls }),
          await lab.probe('pmt', { host: ctrIp, port: PORTS.plain, marker: plain }),
        ]
        const pcap = await capture.stop()
        // 8080 demands a mesh client certificate: the plaintext app reaching it proves the wrap.
        expect(r.map((x) => x.echoed)).toEqual([true, true, true])
        expect([appCtr.sawMarker(wrapped), appCtr.sawMarker(wrappedTls), appCtr.sawMarker(plain)]).toEqual([true, true, true])
        expect([pcap.includes(Buffer.from(wrapped)), pcap.includes(Buffer.from(wrappedTls))]).toEqual([false, false])
        expect(pcap.includes(Buffer.from(plain))).toBe(true)
      } finally {
        client.kill('SIGKILL')
        await client.exited
      }
    }, 40_000)

    it('the wire (capture on the Contrast pod veth): TLS only in both directions, handshakes seen, negotiated parameters recorded', async () => {
      const countersBefore = await contrast.stats('ssl.')
      const capture = await lab.capture('ctr')
      const secrets = {
        ctrToPm: marker('WIRE-CTR-PM'),
        ctrToPmTls: marker('WIRE-CTR-PM-8443'),
        pmToCtr: marker('WIRE-PM-CTR'),
        pmToCtrTls: marker('WIRE-PM-CTR-8443'),
      }
      const control = marker('WIRE-PLAIN-CONTROL')
      const results = [
        await lab.probe('ctr', { host: CTR_EGRESS.wire, port: EGRESS_PORTS.mtls, marker: secrets.ctrToPm }),
        await lab.probe('ctr', { host: CTR_EGRESS.wireTls, port: EGRESS_PORTS.tls, marker: secrets.ctrToPmTls }),
        await lab.probe('pm', { host: PM_EGRESS.wire, port: EGRESS_PORTS.mtls, marker: secrets.pmToCtr }),
        await lab.probe('pm', { host: PM_EGRESS.wireTls, port: EGRESS_PORTS.tls, marker: secrets.pmToCtrTls }),
        await lab.probe('pm', { host: ctrIp, port: PORTS.plain, marker: control }),
      ]
      const pcap = await capture.stop()
      expect(results.map((r) => r.echoed)).toEqual([true, true, true, true, true])
      // The control proves the capture sees payloads; no secret may be among them.
      expect(pcap.includes(Buffer.from(control))).toBe(true)
      for (const s of Object.values(secrets)) expect(pcap.includes(Buffer.from(s)), s).toBe(false)

      const flows = tlsFlows(pcap)
      const one = (client: string, server: string, port: number): TlsFlow => {
        const f = flows.filter((x) => x.client.startsWith(`${client}:`) && x.server === `${server}:${port}`)
        expect(f, `one TLS connection ${client} -> ${server}:${port} in ${JSON.stringify(flows)}`).toHaveLength(1)
        return f[0]!
      }
      const ctrToPm = one(ctrIp, pmIp, PORTS.mtls)
      const ctrToPmTls = one(ctrIp, pmIp, PORTS.tls)
      const pmToCtr = one(pmIp, ctrIp, PORTS.mtls)
      const pmToCtrTls = one(pmIp, ctrIp, PORTS.tls)
      console.log(`[${plane.kind}] negotiated on the wire: ${JSON.stringify({ ctrToPm, ctrToPmTls, pmToCtr, pmToCtrTls }, null, 1)}`)

      // Contrast's Envoy as a client: Envoy's defaults, TLS 1.2 at most, no SNI; our server
      // answers with an ECDHE + AEAD suite, asks for a certificate on the mTLS port only, and
      // Contrast sends leaf ‖ intermediate (in clear: TLS 1.2 encrypts no certificates).
      for (const f of [ctrToPm, ctrToPmTls]) {
        expect(f.resumed).toBe(false)
        expect(f.sni).toBeUndefined()
        expect(f.version).toBe('TLSv1.2')
        expect(f.cipher).toMatch(/^ECDHE-ECDSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$/)
        expect(['X25519', 'P-256']).toContain(f.group)
      }
      expect(ctrToPm.certificateRequested).toBe(true)
      expect(ctrToPm.clientCertificates).toBe(2)
      expect(ctrToPmTls.certificateRequested).toBe(false)
      // What that costs: TLS 1.2 sends certificates in clear, so a passive observer reads
      // our pod's name off Contrast-originated handshakes (nothing else on the wire carries
      // "mesh-api": names resolve from hosts files, and our own client sends TLS 1.3).
      expect(pcap.includes(Buffer.from('mesh-api'))).toBe(true)
      // Our client to Contrast's Envoy server: TLS 1.3 (Envoy's server default allows it),
      // with the dialled name as SNI (Contrast ignores it).
      for (const f of [pmToCtr, pmToCtrTls]) {
        expect(f.sni).toBe('contrast-web')
        expect(f.version).toBe('TLSv1.3')
        expect(f.cipher).toMatch(/^TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/)
      }

      // Contrast's Envoy counts the same: its egress cluster spoke TLS 1.2 with the cipher
      // seen on the wire, its ingress listeners TLS 1.3.
      const after = await contrast.stats('ssl.')
      const delta = (k: string): number => (after[k] ?? 0) - (countersBefore[k] ?? 0)
      expect(delta('cluster.wire.ssl.versions.TLSv1.2')).toBe(1)
      expect(delta(`cluster.wire.ssl.ciphers.${ctrToPm.cipher}`)).toBe(1)
      expect(delta(`cluster.wire.ssl.curves.${ctrToPm.group}`)).toBe(1)
      expect(delta('listener.0.0.0.0_15006.ssl.versions.TLSv1.3')).toBe(1)
      expect(delta('listener.0.0.0.0_15007.ssl.versions.TLSv1.3')).toBe(1)
      expect(delta(`listener.0.0.0.0_15006.ssl.ciphers.${pmToCtr.cipher}`)).toBe(1)
    }, 40_000)
  })
}
