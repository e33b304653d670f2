// Emojivoto, written as Contrast users write it (test/fixtures/emojivoto/emojivoto.yaml),
// through `initdata` and then through the end-to-end topology: each Deployment a pod
// (network namespace) running the real daemon from dist/ with the config initdata
// measured for it and a certificate carrying the names initdata put into the
// coordinator's policy (plus the pod IP, which the coordinator adds). Services are host
// names resolving to the pod; kube-proxy's port mapping (web-svc:443 -> web:8080) is a
// DNAT rule in the caller's namespace. Apps are echo servers on the example's ports.
//
// What must hold: web -> emoji-svc and voting-svc through its loopback egress addresses
// over mTLS; vote-bot -> web-svc:443 with its own TLS client, checking the name web-svc
// against the mesh CA (web's 8080 is `#false`); the wire carries no plaintext; and a
// certificate with Contrast's names only (workload + pod IP) is refused by secure
// naming, which is why the Service names are derived.

import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import { join } from 'node:path'
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MeshLab, type Daemon, type EchoApp } from '../../src/demo/index.js'
import { parseMeshSection, parseInitdataToml, MESH_INITDATA_KEY, type CoordinatorPin } from '../../src/config/index.js'
import { addInitdataToManifest, type InitdataResult } from '../../src/policy/index.js'
import { envoyForTests } from '../envoy-support.js'
import { requireNetns } from './netns.js'

const describeNetns = requireNetns()
const envoy = envoyForTests()
const marker = (tag: string): string => `${tag}-${randomBytes(6).toString('hex')}`
const FIXTURE = new URL('../fixtures/emojivoto/emojivoto.yaml', import.meta.url)
const coordinator: CoordinatorPin = parseMeshSection(`[coordinator]\naddress = "coordinator:7777"\nidentity = "${'ab'.repeat(32)}"\n`).coordinator

/** Deployment name -> lab node name (node names are at most 6 characters). */
const NODE_OF: Readonly<Record<string, string>> = { web: 'web', emoji: 'emoji', voting: 'voting', 'vote-bot': 'vbot' }

const planes = [
  { kind: 'builtin', prefix: 'pmemo', subnet: 86, skip: undefined },
  { kind: 'envoy', prefix: 'pmemv', subnet: 87, skip: envoy.skip },
] as const

/**
 * The daemon's config file: the measured mesh section without the pin and the identity
 * (no coordinator here), plus `extra` top-level tables.
 */
function configFile(r: InitdataResult, extra: Record<string, unknown> = {}): string {
  const section = parseToml(parseInitdataToml(r.toml).data[MESH_INITDATA_KEY] as string) as Record<string, unknown>
  delete section['coordinator']
  delete section['workload']
  return stringifyToml({ ...section, ...extra })
}

/**
 * Contrast's e2e turns on the admin interface (9901) of its mesh pods, and its tooling
 * appends `##admin#9901#true`: emoji gets both (plaintext, as in Contrast); voting gets
 * the admin port alone, which is then reached through the mesh like any other port.
 */
const ADMIN = 9901
const EXTRA: Readonly<Record<string, Record<string, unknown>>> = {
  emoji: { admin: { port: ADMIN }, ingress: { ports: [{ name: 'admin', port: ADMIN, mode: 'passthrough' }] } },
  voting: { admin: { port: ADMIN } },
}

for (const plane of planes) {
  const suite = plane.skip === undefined ? describeNetns : describe.skip
  suite(`emojivoto end to end, ${plane.kind} data plane${plane.skip === undefined ? '' : ` (skipped: ${plane.skip})`}`, () => {
    let lab: MeshLab
    const apps: Record<string, EchoApp> = {}
    const daemons: Record<string, Daemon> = {}
    let results: Record<string, InitdataResult>

    const dataplaneArgs = (node: string): string[] =>
      plane.kind === 'builtin'
        ? ['--dataplane', 'builtin']
        : ['--dataplane', 'envoy', '--envoy-bin', envoy.path ?? 'envoy', '--work-dir', `${lab.workDir}/envoy-${node}-${Date.now()}`]

    const settle = () => new Promise((r) => setTimeout(r, 150))

    beforeAll(async () => {
      const out = addInitdataToManifest(readFileSync(FIXTURE, 'utf8'), { coordinator })
      results = Object.fromEntries(out.results.map((r) => [r.resource.name, r]))
      lab = await MeshLab.create({
        prefix: plane.prefix,
        subnet: plane.subnet,
        nodes: Object.values(NODE_OF),
        hosts: { web: ['web-svc'], emoji: ['emoji-svc'], voting: ['voting-svc'] },
      })
      const web = lab.node('web')
      // kube-proxy's part for web-svc:443 -> web:8080, as seen from vote-bot.
      const nat = `table ip ${plane.prefix}_svc {\n chain out {\n  type nat hook output priority -100; policy accept;\n  ip daddr ${web.ipv4} tcp dport 443 dnat to :8080\n }\n}\n`
      const r = await lab.topology.exec('vbot', 'nft', ['-f', '-'], { input: nat })
      if (r.code !== 0) throw new Error(`nft in vbot: ${r.stderr}`)
      for (const [deployment, node] of Object.entries(NODE_OF)) {
        const result = results[deployment] as InitdataResult
        await lab.pki.issue(node, [...result.sans, lab.node(node).ipv4])
        const file = join(lab.workDir, `${node}.toml`)
        writeFileSync(file, configFile(result, EXTRA[node]))
        daemons[node] = lab.startDaemon(node, ['--file', file, '--tls-dir', lab.pki.tlsDir(node), ...dataplaneArgs(node)])
      }
      apps['emoji'] = await lab.startApp('emoji', { ports: [8080, 8801] })
      apps['voting'] = await lab.startApp('voting', { ports: [8080, 8801] })
      apps['web'] = await lab.startApp('web', { ports: [8080] })
      await Promise.all(Object.values(daemons).map((d) => d.waitReady()))
    }, 120_000)

    afterAll(async () => {
      await lab?.destroy()
    }, 60_000)

    it('initdata gave each pod the names of the Services that select it', () => {
      expect(results['emoji']?.sans).toEqual(['emoji', 'emoji-svc', 'emoji-svc.default', 'emoji-svc.default.svc', 'emoji-svc.default.svc.cluster.local'])
      expect(results['voting']?.sans).toContain('voting-svc')
      expect(results['web']?.sans).toContain('web-svc')
      // The certificate the pod runs with names what the Service is called.
      const chain = readFileSync(join(lab.pki.tlsDir('emoji'), 'certChain.pem'), 'utf8')
      expect(new X509Certificate(chain).subjectAltName).toContain('DNS:emoji-svc')
    })

    it.each([
      ['emoji-svc', '127.137.0.1', 'emoji'],
      ['voting-svc', '127.137.0.2', 'voting'],
    ] as const)('web -> %s through %s:8081, over the mesh, reaches the app', async (_svc, address, target) => {
      const m = marker(`WEB-TO-${target}`)
      const r = await lab.probe('web', { host: address, port: 8081, marker: m })
      expect(r.error).toBeUndefined()
      expect(r).toMatchObject({ connected: true, echoed: true })
      await settle()
      expect(apps[target]?.sawMarker(m)).toBe(true)
    })

    it('vote-bot -> web-svc:443 with its own TLS client, checking the name web-svc against the mesh CA', async () => {
      const m = marker('BOT-TO-WEB')
      const r = await lab.probe('vbot', {
        host: 'web-svc',
        port: 443,
        marker: m,
        tls: { ca: join(lab.pki.tlsDir('vbot'), 'mesh-ca.pem'), servername: 'web-svc' },
      })
      expect(r.error).toBeUndefined()
      expect(r).toMatchObject({ connected: true, echoed: true, tls: { authorized: true } })
      await settle()
      expect(apps['web']?.sawMarker(m)).toBe(true)
    })

    it('the wire into emoji carries TLS only, while a plaintext control shows on it (and is refused)', async () => {
      const capture = await lab.capture('emoji')
      const secret = marker('EMOJI-SECRET')
      const control = marker('EMOJI-CONTROL')
      const viaMesh = await lab.probe('web', { host: '127.137.0.1', port: 8081, marker: secret })
      const plain = await lab.probe('vbot', { host: lab.node('emoji').ipv4, port: 8080, marker: control, timeoutMs: 2_500 })
      const pcap = await capture.stop()
      expect(viaMesh.echoed).toBe(true)
      expect(plain.echoed).toBe(false)
      expect(pcap.includes(Buffer.from(control))).toBe(true)
      expect(pcap.includes(Buffer.from(secret))).toBe(false)
      await settle()
      expect(apps['emoji']?.sawMarker(secret)).toBe(true)
      expect(apps['emoji']?.sawMarker(control)).toBe(false)
    })

    /** GET /stats/prometheus on `target`:9901 from vote-bot, plain HTTP or HTTPS with vote-bot's mesh certificate. */
    const scrape = async (target: string, tls: boolean): Promise<{ status?: number; error?: string; body?: string }> => {
      const dir = lab.pki.tlsDir('vbot')
      const script = `
        const mod = require(${JSON.stringify(tls ? 'node:https' : 'node:http')})
        const fs = require('node:fs')
        const opts = { host: ${JSON.stringify(lab.node(target).ipv4)}, port: ${ADMIN}, path: '/stats/prometheus', timeout: 2500,
          ${tls ? `cert: fs.readFileSync(${JSON.stringify(join(dir, 'certChain.pem'))}), key: fs.readFileSync(${JSON.stringify(join(dir, 'key.pem'))}), ca: fs.readFileSync(${JSON.stringify(join(dir, 'mesh-ca.pem'))}), servername: ${JSON.stringify(`${target}-svc`)},` : ''} }
        const req = mod.get(opts, (res) => { let body = ''; res.on('data', (d) => (body += d)); res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body }))) })
        req.on('timeout', () => req.destroy(new Error('timeout')))
        req.on('error', (e) => console.log(JSON.stringify({ error: e.code ?? e.message })))`
      const r = await lab.topology.exec('vbot', process.execPath, ['-e', script], { timeoutMs: 10_000 })
      return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { status?: number; error?: string; body?: string }
    }

    it('the admin port with ##admin#9901#true (as Contrast writes it) answers in plaintext, /stats/prometheus included', async () => {
      const r = await scrape('emoji', false)
      expect(r.status).toBe(200)
      expect(r.body).toMatch(/^podvm_mesh_ready 1$/m)
    })

    it('the admin port without such an entry is reached through the mesh only: mTLS answers, plaintext does not', async () => {
      const plain = await scrape('voting', false)
      expect(plain.status).toBeUndefined()
      expect(plain.error).toBeDefined()
      const viaMesh = await scrape('voting', true)
      expect(viaMesh.error).toBeUndefined()
      expect(viaMesh.status).toBe(200)
      expect(viaMesh.body).toMatch(/^podvm_mesh_ready 1$/m)
    })

    it("with Contrast's certificate names only (workload and pod IP), secure naming refuses web -> emoji-svc", async () => {
      const emoji = lab.node('emoji')
      const loads = () => daemons['emoji']?.records().filter((l) => l['msg'] === 'certificates loaded').length ?? 0
      /** Re-issues emoji's certificate and waits until its daemon has loaded it. */
      const reissue = async (sans: readonly string[]) => {
        const before = loads()
        await lab.pki.issue('emoji', sans)
        const deadline = Date.now() + 10_000
        while (loads() === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
        expect(loads()).toBeGreaterThan(before)
      }
      try {
        await reissue(['emoji', emoji.ipv4])
        const m = marker('NAMELESS')
        const r = await lab.probe('web', { host: '127.137.0.1', port: 8081, marker: m, timeoutMs: 2_500 })
        expect(r.echoed).toBe(false)
        await settle()
        expect(apps['emoji']?.sawMarker(m)).toBe(false)
      } finally {
        await reissue([...(results['emoji'] as InitdataResult).sans, emoji.ipv4])
      }
      const again = await lab.probe('web', { host: '127.137.0.1', port: 8081, marker: marker('NAMED-AGAIN') })
      expect(again.echoed).toBe(true)
    })
  })
}
