// Server-first protocols through the mesh (SMTP, MySQL: the app speaks first, the client
// waits). Ingress connects to the app only after the client's TLS handshake (Envoy:
// upstream_connect_mode ON_DOWNSTREAM_TLS_HANDSHAKE); a client that completes the
// handshake and sends nothing must still get its upstream connection and the greeting.
// Two namespaces: A the client, B a mesh pod whose app greets on accept, on an mTLS port
// and on a `#false` (TLS without client certificate) port. The wire between A and B
// carries the greeting only encrypted.

import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MeshLab, sansFor, type Capture } from '../../src/demo/index.js'
import { envoyForTests } from '../envoy-support.js'
import { requireNetns } from './netns.js'

const describeNetns = requireNetns()
const envoy = envoyForTests()
const MTLS_PORT = 3306
const TLS_PORT = 2525

const planes = [
  { kind: 'builtin', prefix: 'pmsf', subnet: 71, skip: undefined },
  { kind: 'envoy', prefix: 'pmsfv', subnet: 72, skip: envoy.skip },
] as const

// The app: greets every connection at once, then echoes; never reads before it greets.
const greeter = (greeting: string): string => `
const net = require('node:net')
for (const port of [${MTLS_PORT}, ${TLS_PORT}]) {
  net.createServer((s) => { s.on('error', () => {}); s.write(${JSON.stringify(greeting)} + ' ' + port + '\\r\\n'); s.pipe(s) })
    .listen(port, '::', () => console.log('listening ' + port))
}`

// The client: TLS handshake, then waits for the first line without writing anything.
const waiter = (host: string, port: number, cert: string | undefined, key: string | undefined): string => `
const tls = require('node:tls'); const fs = require('node:fs')
const opts = { host: ${JSON.stringify(host)}, port: ${port}, rejectUnauthorized: false }
${cert === undefined ? '' : `opts.cert = fs.readFileSync(${JSON.stringify(cert)}); opts.key = fs.readFileSync(${JSON.stringify(key)})`}
const c = tls.connect(opts)
let buf = ''
const done = (r) => { process.stdout.write(JSON.stringify(r) + '\\n'); c.destroy(); process.exit(0) }
c.on('secureConnect', () => { buf = '' })
c.on('data', (d) => { buf += d; if (buf.includes('\\n')) done({ line: buf.trim() }) })
c.on('error', (e) => done({ error: e.message }))
setTimeout(() => done({ error: 'no greeting within 5 s' }), 5000)`

for (const plane of planes) {
  const suite = plane.skip === undefined ? describeNetns : describe.skip
  suite(`server-first protocols through the mesh, ${plane.kind} data plane${plane.skip === undefined ? '' : ` (skipped: ${plane.skip})`}`, () => {
    let lab: MeshLab
    let bAddr: { ipv4: string; ipv6: string }
    let aCert: { cert: string; key: string }
    const greeting = `220-greeting-${randomBytes(6).toString('hex')}`

    const dataplaneArgs = (): string[] =>
      plane.kind === 'builtin'
        ? ['--dataplane', 'builtin']
        : ['--dataplane', 'envoy', '--envoy-bin', envoy.path ?? 'envoy', '--work-dir', `${lab.workDir}/envoy-b`]

    beforeAll(async () => {
      lab = await MeshLab.create({ prefix: plane.prefix, subnet: plane.subnet, nodes: ['a', 'b'] })
      const [a, b] = [lab.node('a'), lab.node('b')]
      bAddr = b
      await lab.pki.issue('a', sansFor(a))
      await lab.pki.issue('b', sansFor(b))
      aCert = { cert: `${lab.pki.tlsDir('a')}/certChain.pem`, key: `${lab.pki.tlsDir('a')}/key.pem` }
      const app = lab.topology.spawn('b', process.execPath, ['-e', greeter(greeting)])
      await new Promise<void>((resolve, reject) => {
        let out = ''
        const t = setTimeout(() => reject(new Error(`greeter on b did not listen: ${out}`)), 10_000)
        app.stdout?.on('data', (d: Buffer) => {
          out += d.toString()
          if (out.includes(`listening ${MTLS_PORT}`) && out.includes(`listening ${TLS_PORT}`)) {
            clearTimeout(t)
            resolve()
          }
        })
      })
      const daemon = lab.startDaemon('b', ['--ingress', `smtp#${TLS_PORT}#false`, '--tls-dir', lab.pki.tlsDir('b'), ...dataplaneArgs()])
      await daemon.waitReady()
    }, 90_000)

    afterAll(async () => {
      await lab?.destroy()
    }, 60_000)

    const wait = async (host: string, port: number, withCert: boolean): Promise<{ line?: string; error?: string }> => {
      const r = await lab.topology.exec('a', process.execPath, ['-e', waiter(host, port, withCert ? aCert.cert : undefined, withCert ? aCert.key : undefined)])
      return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { line?: string; error?: string }
    }

    describe.each([
      ['IPv4', 'ipv4'],
      ['IPv6', 'ipv6'],
    ] as const)('%s', (_label, family) => {
      it(`a client that only completes the handshake gets the app's greeting: mTLS on ${MTLS_PORT}, TLS on ${TLS_PORT} (#false); encrypted on the wire`, async () => {
        const capture: Capture = await lab.capture('a', `tcp and (port ${MTLS_PORT} or port ${TLS_PORT})`)
        const mtls = await wait(bAddr[family], MTLS_PORT, true)
        const tls = await wait(bAddr[family], TLS_PORT, false)
        const pcap = await capture.stop()
        expect([mtls, tls]).toEqual([{ line: `${greeting} ${MTLS_PORT}` }, { line: `${greeting} ${TLS_PORT}` }])
        // Packets were seen, and the greeting never in clear.
        expect(pcap.length).toBeGreaterThan(24)
        expect(pcap.includes(Buffer.from(greeting))).toBe(false)
      })
    })
  })
}
