// Ingress delivers only to the pod itself (issue 10, item 2). Three namespaces:
//   C  a client that routes X's service address through B
//   B  a mesh pod (ingress: 8443 #false, everything else mTLS)
//   X  "elsewhere": an echo app on a service address that B can reach
// A mesh pod must never relay a decrypted stream to an address that is not its own:
// C's TLS (no client certificate) to X:8443 and mTLS (with a mesh certificate) to
// X:9000 reach nothing at X, over IPv4 and IPv6. Two layers, each sufficient alone:
// the ruleset (nothing not addressed to the pod is redirected; what is not for the pod
// is dropped) and the data plane (it forwards only to a local address). The second
// half replaces B's ruleset by one that redirects every destination (what the mesh
// did before) to show the data plane's check by itself.

import { randomBytes } from 'node:crypto'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MeshLab, sansFor, type Capture, type Daemon, type EchoApp } from '../../src/demo/index.js'
import { applyRuleset, netnsRunner } from '../../src/netfilter/index.js'
import { envoyForTests } from '../envoy-support.js'
import { requireNetns } from './netns.js'

const describeNetns = requireNetns()
const envoy = envoyForTests()
const marker = (tag: string): string => `${tag}-${randomBytes(6).toString('hex')}`
const TLS_PORT = 8443
const MTLS_PORT = 9000

const planes = [
  { kind: 'builtin', prefix: 'pmil', subnet: 86, skip: undefined },
  { kind: 'envoy', prefix: 'pmilv', subnet: 87, skip: envoy.skip },
] as const

// What the ingress rules were before the fix: every inbound TCP connection, whatever its
// destination, redirected, and made local by the TPROXY mark.
const REDIRECT_EVERYTHING = `add table inet podvm_mesh
delete table inet podvm_mesh
table inet podvm_mesh {
	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		iifname "lo" accept
		meta l4proto tcp tcp flags != syn / syn,ack socket transparent 1 meta mark set 0x50e accept
		ct direction reply ct state established,related accept
		tcp dport ${TLS_PORT} tproxy to :15007 meta mark set 0x50e accept
		meta l4proto tcp tproxy to :15006 meta mark set 0x50e accept
	}
}
`
const TPROXY_ROUTES = [
  ['-4', 'rule', 'add', 'fwmark', '0x50e', 'lookup', '150'],
  ['-4', 'route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '150'],
  ['-6', 'rule', 'add', 'fwmark', '0x50e', 'lookup', '150'],
  ['-6', 'route', 'replace', 'local', '::/0', 'dev', 'lo', 'table', '150'],
]


/** Packets in a pcap file (classic format: 24-byte header, 16-byte record headers). */
function pcapPackets(pcap: Buffer): number {
  let n = 0
  for (let at = 24; at + 16 <= pcap.length; n++) at += 16 + pcap.readUInt32LE(at + 8)
  return n
}

for (const plane of planes) {
  const suite = plane.skip === undefined ? describeNetns : describe.skip
  suite(`ingress delivers only to the pod itself, ${plane.kind} data plane${plane.skip === undefined ? '' : ` (skipped: ${plane.skip})`}`, () => {
    let lab: MeshLab
    let appB: EchoApp
    let appX: EchoApp
    let daemonB: Daemon
    // X's service address, which C routes through B and B routes to X.
    const service = { ipv4: `10.${plane.subnet}.1.9`, ipv6: `fd00:${plane.subnet.toString(16)}:1::9` }
    let bAddr: { ipv4: string; ipv6: string }
    let cCert: { cert: string; key: string }

    const mustRun = async (node: string, cmd: string, args: string[]): Promise<void> => {
      const r = await lab.topology.exec(node, cmd, args)
      if (r.code !== 0) throw new Error(`${node}: ${cmd} ${args.join(' ')}: ${r.stderr}`)
    }

    /** C's TLS client (optionally with its mesh certificate) to host:port; did the marker reach X or B? */
    const attempt = async (host: string, port: number, withCert: boolean, tag: string) => {
      const m = marker(tag)
      const result = await lab.probe('c', { host, port, marker: m, timeoutMs: 3_000, tls: withCert ? cCert : {} })
      await new Promise((r) => setTimeout(r, 150))
      return { result, atX: appX.sawMarker(m), atB: appB.sawMarker(m) }
    }

    const captureX = (): Promise<Capture> => lab.capture('x', `tcp and (dst port ${TLS_PORT} or dst port ${MTLS_PORT})`)

    const metricsB = async (): Promise<string> => {
      const script = "const m=await (await fetch('http://127.0.0.1:15020/metrics')).text();process.stdout.write(m)"
      return (await lab.topology.exec('b', process.execPath, ['--input-type=module', '-e', script])).stdout
    }

    const dataplaneArgs = (): string[] =>
      plane.kind === 'builtin'
        ? ['--dataplane', 'builtin']
        : ['--dataplane', 'envoy', '--envoy-bin', envoy.path ?? 'envoy', '--work-dir', `${lab.workDir}/envoy-b`]

    beforeAll(async () => {
      lab = await MeshLab.create({ prefix: plane.prefix, subnet: plane.subnet, nodes: ['c', 'b', 'x'] })
      const [c, b, x] = [lab.node('c'), lab.node('b'), lab.node('x')]
      bAddr = b
      await mustRun('x', 'ip', ['addr', 'add', `${service.ipv4}/32`, 'dev', 'lo'])
      await mustRun('x', 'ip', ['addr', 'add', `${service.ipv6}/128`, 'dev', 'lo'])
      await mustRun('c', 'ip', ['route', 'add', `${service.ipv4}/32`, 'via', b.ipv4])
      await mustRun('c', 'ip', ['-6', 'route', 'add', `${service.ipv6}/128`, 'via', b.ipv6])
      await mustRun('b', 'ip', ['route', 'add', `${service.ipv4}/32`, 'via', x.ipv4])
      await mustRun('b', 'ip', ['-6', 'route', 'add', `${service.ipv6}/128`, 'via', x.ipv6])
      await lab.pki.issue('b', sansFor(b))
      await lab.pki.issue('c', sansFor(c))
      cCert = { cert: `${lab.pki.tlsDir('c')}/certChain.pem`, key: `${lab.pki.tlsDir('c')}/key.pem` }
      appB = await lab.startApp('b', { ports: [TLS_PORT, MTLS_PORT] })
      appX = await lab.startApp('x', { ports: [TLS_PORT, MTLS_PORT] })
      daemonB = lab.startDaemon('b', ['--ingress', `public#${TLS_PORT}#false`, '--tls-dir', lab.pki.tlsDir('b'), ...dataplaneArgs()])
      await daemonB.waitReady()
    }, 90_000)

    afterAll(async () => {
      await lab?.destroy()
    }, 60_000)

    describe.each([
      ['IPv4', 'ipv4'],
      ['IPv6', 'ipv6'],
    ] as const)('%s', (_label, family) => {
      it('control: the same clients reach B’s own app through the mesh', async () => {
        const tls = await attempt(bAddr[family], TLS_PORT, false, 'B-TLS')
        const mtls = await attempt(bAddr[family], MTLS_PORT, true, 'B-MTLS')
        expect([tls.result.echoed, tls.atB]).toEqual([true, true])
        expect([mtls.result.echoed, mtls.atB]).toEqual([true, true])
      })

      it(`TLS without a client certificate to X:${TLS_PORT} (#false) and mTLS to X:${MTLS_PORT} reach nothing at X`, async () => {
        const capture = await captureX()
        const tls = await attempt(service[family], TLS_PORT, false, 'X-TLS')
        const mtls = await attempt(service[family], MTLS_PORT, true, 'X-MTLS')
        const packets = pcapPackets(await capture.stop())
        expect([tls.atX, mtls.atX, tls.atB, mtls.atB]).toEqual([false, false, false, false])
        expect([tls.result.echoed, mtls.result.echoed]).toEqual([false, false])
        // Not one packet for those ports arrived at X: B did not even try.
        expect(packets).toBe(0)
      })
    })

    it('the ruleset dropped them as not addressed to the pod', async () => {
      const table = (await lab.topology.exec('b', 'nft', ['list', 'table', 'inet', 'podvm_mesh'])).stdout
      const line = table.split('\n').find((l) => l.includes('comment "not addressed to this pod"')) ?? ''
      expect(Number(/counter packets (\d+)/.exec(line)?.[1] ?? 0)).toBeGreaterThanOrEqual(4)
    })

    describe('with a ruleset that redirects every destination (the data plane alone)', () => {
      beforeAll(async () => {
        await applyRuleset({ nft: REDIRECT_EVERYTHING, routes: TPROXY_ROUTES }, netnsRunner(lab.node('b').ns), pino({ level: 'silent' }))
      })

      describe.each([
        ['IPv4', 'ipv4'],
        ['IPv6', 'ipv6'],
      ] as const)('%s', (_label, family) => {
        it('control: B’s own app is still reached', async () => {
          const tls = await attempt(bAddr[family], TLS_PORT, false, 'B-TLS-OPEN')
          expect([tls.result.echoed, tls.atB]).toEqual([true, true])
        })

        // Builtin: refused at accept (NOT_LOCAL), so not one packet leaves for X.
        // Envoy: its plaintext hop is bound to a loopback source (127.0.0.6 / ::1). Over IPv4
        // the connect fails in B. Over IPv6 Linux still puts the SYN on the wire with source
        // ::1; X drops it as a martian, and B's kernel drops any reply addressed to ::1 that
        // arrives on a non-loopback interface, so no connection and no byte of the stream
        // can leave the pod. The test counts those SYNs separately and requires that nothing
        // with a routable source reaches X.
        it(`TLS to X:${TLS_PORT} and mTLS to X:${MTLS_PORT} are refused by the data plane; nothing reaches X`, async () => {
          const capture = await captureX()
          const routable = await lab.capture('x', `tcp and (dst port ${TLS_PORT} or dst port ${MTLS_PORT}) and not src host ::1 and not src net 127.0.0.0/8`)
          const tls = await attempt(service[family], TLS_PORT, false, 'X-TLS-OPEN')
          const mtls = await attempt(service[family], MTLS_PORT, true, 'X-MTLS-OPEN')
          const packets = pcapPackets(await capture.stop())
          const routablePackets = pcapPackets(await routable.stop())
          expect([tls.atX, mtls.atX]).toEqual([false, false])
          expect([tls.result.echoed, mtls.result.echoed]).toEqual([false, false])
          expect(routablePackets).toBe(0)
          if (plane.kind === 'builtin' || family === 'ipv4') expect(packets).toBe(0)
        })
      })

      // Loopback is the pod's own, but not from the network: C routes 127.0.0.0/8 to B
      // (no loopback address of its own), B has route_localnet=1, and the ruleset here
      // redirects it. B's app listens on every address, 127.0.0.1 included: relaying the
      // decrypted stream to the loopback destination would deliver it.
      it('TLS and mTLS to 127.0.0.1 routed to B are refused by the data plane; B’s app sees nothing', async () => {
        await mustRun('b', 'sysctl', ['-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.eth0.route_localnet=1'])
        await mustRun('c', 'ip', ['addr', 'flush', 'dev', 'lo'])
        await mustRun('c', 'ip', ['route', 'add', '127.0.0.0/8', 'via', bAddr.ipv4, 'dev', 'eth0'])
        await mustRun('c', 'sysctl', ['-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.eth0.route_localnet=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0'])
        const tls = await attempt('127.0.0.1', TLS_PORT, false, 'LO-TLS')
        const mtls = await attempt('127.0.0.1', MTLS_PORT, true, 'LO-MTLS')
        expect([tls.atB, mtls.atB]).toEqual([false, false])
        expect([tls.result.echoed, mtls.result.echoed]).toEqual([false, false])
      })

      // Envoy has no NOT_LOCAL check of its own for X (its plaintext hop's loopback source
      // fails there), only the loopback-guard chain: the two connections to 127.0.0.1.
      it.runIf(plane.kind === 'envoy')('Envoy counted the loopback refusals as NOT_LOCAL (its loopback-guard chain)', async () => {
        let text = ''
        for (let i = 0; i < 50; i++) {
          text = await metricsB()
          if (/^podvm_mesh_failures_total\{reason="NOT_LOCAL"\} [2-9]/m.test(text)) break
          await new Promise((r) => setTimeout(r, 100))
        }
        expect(text).toMatch(/^podvm_mesh_failures_total\{reason="NOT_LOCAL"\} [2-9]/m)
      })

      it.runIf(plane.kind === 'builtin')('the builtin data plane counted and logged each refusal (NOT_LOCAL)', async () => {
        expect(await metricsB()).toMatch(/^podvm_mesh_failures_total\{reason="NOT_LOCAL"\} ([6-9]|\d\d)/m)
        const refusals = daemonB.records().filter((r) => r['reason'] === 'NOT_LOCAL')
        expect(refusals.length).toBeGreaterThanOrEqual(6)
      })
    })
  })
}
