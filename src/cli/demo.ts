// `podvm-mesh demo`: builds the three-pod topology, shows what the mesh does with real
// bytes through real kernels, prints a short report and removes everything again —
// also on failure and on Ctrl-C.

import { randomBytes } from 'node:crypto'
import { A_EGRESS, A_EGRESS_B, A_EGRESS_DB, APP_PORTS, B_INGRESS, HOSTS, IMPOSTOR_PORT, MeshLab, NODES, sansFor, type ProbeResult } from '../demo/index.js'
import { command, UsageError, type CommandIo } from './command.js'

const PREFIX = 'pmdemo'

export const demoCommand = command({ name: 'demo', usage: 'usage: podvm-mesh demo   (as root; takes no arguments)\n', run: demo })

async function demo(argv: string[], io: CommandIo): Promise<number> {
  if (argv.length > 0) throw new UsageError(`takes no arguments, got ${argv.join(' ')}`)
  if (process.getuid?.() !== 0) throw new UsageError('needs root (network namespaces, nftables)')
  const out = (s = ''): void => void io.stdout.write(`${s}\n`)
  let lab: MeshLab | undefined
  let interrupted = false
  const onSigint = (): void => {
    interrupted = true
    out('\ninterrupted: cleaning up')
    void lab?.destroy().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSigint)
  process.once('SIGTERM', onSigint)
  let failures = 0
  const check = (ok: boolean, text: string): void => {
    if (!ok) failures++
    out(`  [${ok ? ' ok ' : 'FAIL'}] ${text}`)
  }
  try {
    out('podvm-mesh demo: three pods as network namespaces on one bridge')
    lab = await MeshLab.create({ prefix: PREFIX, subnet: 77, nodes: NODES, hosts: HOSTS })
    const [a, b, c] = [lab.node('a'), lab.node('b'), lab.node('c')]
    out(`  A ${a.ipv4} ${a.ipv6}  mesh; its app dials B via ${A_EGRESS_B}:${APP_PORTS.mtls}`)
    out(`  B ${b.ipv4} ${b.ipv6}  mesh; app on ${APP_PORTS.mtls} (mTLS), ${APP_PORTS.tls} (#false), ${APP_PORTS.plain} (#true)`)
    out(`  C ${c.ipv4} ${c.ipv6}  no mesh; an outsider, and an impostor for db.mesh.test`)
    out()
    await lab.pki.issue('a', sansFor(a))
    await lab.pki.issue('b', sansFor(b))
    // The impostor holds a genuine mesh certificate, but for c.mesh.test, not db.mesh.test.
    await lab.pki.issue('c', sansFor(c))
    const appB = await lab.startApp('b', { ports: [APP_PORTS.mtls, APP_PORTS.tls, APP_PORTS.plain] })
    const appC = await lab.startApp('c', {
      ports: [IMPOSTOR_PORT],
      tls: { cert: `${lab.pki.tlsDir('c')}/certChain.pem`, key: `${lab.pki.tlsDir('c')}/key.pem` },
    })
    const daemonB = lab.startDaemon('b', ['--ingress', B_INGRESS, '--tls-dir', lab.pki.tlsDir('b')])
    const daemonA = lab.startDaemon('a', ['--egress', A_EGRESS, '--tls-dir', lab.pki.tlsDir('a')])
    await Promise.all([daemonA.waitReady(), daemonB.waitReady()])
    out('mesh daemons ready in A and B (baseline, data plane, certificates, final ruleset)')
    out()

    const marker = `DEMO-SECRET-${randomBytes(6).toString('hex')}`
    const capture = await lab.capture('b')
    const viaMesh = await lab.probe('a', { host: A_EGRESS_B, port: APP_PORTS.mtls, marker, bulkBytes: 4 * 1024 * 1024 })
    const pcap = await capture.stop()
    out('what was sent:')
    check(
      viaMesh.echoed && viaMesh.sha256Sent === viaMesh.sha256Received,
      `A's app -> ${A_EGRESS_B}:${APP_PORTS.mtls} -> B:${APP_PORTS.mtls}: ${viaMesh.sent} bytes sent, ${viaMesh.received} echoed, checksums ${viaMesh.sha256Sent === viaMesh.sha256Received ? 'match' : 'differ'}`,
    )
    check(appB.sawMarker(marker), `B's app received the marker "${marker}" in plaintext, locally`)
    out('what the wire showed:')
    check(
      pcap.length > 10_000 && !pcap.includes(Buffer.from(marker)),
      `capture on B's eth0: ${pcap.length} bytes of packets, marker ${pcap.includes(Buffer.from(marker)) ? 'FOUND' : 'not found'} — the wire carries TLS only`,
    )
    out('what was rejected, and why:')
    const attempt = async (what: string, r: Promise<ProbeResult>, m: string, expectReach: boolean): Promise<void> => {
      const res = await r
      const reached = appB.sawMarker(m) || appC.sawMarker(m)
      const why = res.error ?? (res.echoed ? 'echoed' : 'closed without an answer')
      check(reached === expectReach, `${what}: ${expectReach ? 'reached the app' : 'never reached the app'} (${why})`)
    }
    const m = (tag: string): string => `${tag}-${randomBytes(4).toString('hex')}`
    let k: string
    k = m('C-PLAIN-V4')
    await attempt(`C -> B:${APP_PORTS.mtls} plaintext (IPv4)`, lab.probe('c', { host: b.ipv4, port: APP_PORTS.mtls, marker: k, timeoutMs: 3000 }), k, false)
    k = m('C-PLAIN-V6')
    await attempt(`C -> B:${APP_PORTS.mtls} plaintext (IPv6)`, lab.probe('c', { host: b.ipv6, port: APP_PORTS.mtls, marker: k, timeoutMs: 3000 }), k, false)
    k = m('C-TLS-NOCERT')
    await attempt(`C -> B:${APP_PORTS.mtls} TLS without a client certificate`, lab.probe('c', { host: b.ipv4, port: APP_PORTS.mtls, marker: k, tls: {}, timeoutMs: 3000 }), k, false)
    k = m('C-TLS-FOREIGN')
    await attempt(
      `C -> B:${APP_PORTS.mtls} TLS with a certificate from another CA`,
      lab.probe('c', { host: b.ipv4, port: APP_PORTS.mtls, marker: k, tls: { cert: lab.pki.foreign.cert, key: lab.pki.foreign.key }, timeoutMs: 3000 }),
      k,
      false,
    )
    k = m('A-DB-IMPOSTOR')
    await attempt(
      `A -> db.mesh.test (DNS points at C, whose mesh certificate names c.mesh.test)`,
      lab.probe('a', { host: A_EGRESS_DB, port: IMPOSTOR_PORT, marker: k, timeoutMs: 3000 }),
      k,
      false,
    )
    out('what the exceptions allow:')
    k = m('C-TLS-8443')
    await attempt(`C -> B:${APP_PORTS.tls} TLS without client certificate (#false)`, lab.probe('c', { host: b.ipv4, port: APP_PORTS.tls, marker: k, tls: {}, timeoutMs: 3000 }), k, true)
    k = m('C-PLAIN-7890')
    await attempt(`C -> B:${APP_PORTS.plain} plaintext (#true)`, lab.probe('c', { host: b.ipv4, port: APP_PORTS.plain, marker: k, timeoutMs: 3000 }), k, true)
    out("what B's application container sees (runc in B's namespace, with the guest hook):")
    const sansB = sansFor(b)
    const app = await lab.runContainer('b', 'app', ['/bin/openssl', 'x509', '-in', '/contrast/tls-config/certChain.pem', '-noout', '-ext', 'subjectAltName'], ['openssl'])
    // openssl prints `DNS:b.mesh.test, IP Address:10.77.0.2, IP Address:FD00:4D:0:0:0:0:0:2`.
    const shown = app.stdout.trim().split('\n').slice(1).join(' ').trim()
    const names = shown.split(', ').map((e) => e.replace(/^(DNS|IP Address):/, '')).map((v) => (v.includes(':') ? new URL(`http://[${v}]`).hostname.slice(1, -1) : v))
    check(
      app.code === 0 && sansB.every((san) => names.includes(san)),
      `B's app container read /contrast/tls-config/certChain.pem: ${app.code === 0 ? shown : `exit ${app.code}: ${(app.stderr + app.hook).trim()}`}`,
    )
    out()
    const refusals = daemonA.records().filter((r) => r['reason'] !== undefined || r['code'] !== undefined).length
    out(`daemon logs: A ${daemonA.records().length} JSON lines (${refusals} naming a refusal), B ${daemonB.records().length}`)
    if (io.env['PODVM_MESH_DEMO_LOGS'] === '1') {
      for (const [name, d] of [['A', daemonA], ['B', daemonB]] as const) {
        out(`--- daemon ${name} log`)
        for (const line of d.lines) out(line)
      }
    }
    daemonA.kill('SIGTERM')
    daemonB.kill('SIGTERM')
    await Promise.all([daemonA.exited, daemonB.exited])
  } catch (err) {
    failures++
    out(`demo failed: ${err instanceof Error ? err.message : String(err)}`)
  } finally {
    if (!interrupted) {
      await lab?.destroy()
      out(`cleaned up: namespaces ${PREFIX}-*, their rules and processes are gone`)
    }
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigint)
  }
  out(failures === 0 ? 'demo: all checks passed' : `demo: ${failures} check(s) failed`)
  return failures === 0 ? 0 : 1
}
