// Closed at every instant, also while stopping and after a crash (issue 10, item 5).
//
// The attack: any connection the data plane closes first leaves a TIME-WAIT socket on
// the pod side, and the attacker chose its 4-tuple. While no data-plane listener exists
// (the drain after SIGTERM, or after a crash), a SYN on that 4-tuple makes nft `tproxy`
// hand over the TIME-WAIT socket itself; had the rule then accepted, the kernel would
// pass the SYN to the application's own listener — and with TCP Fast Open on the
// application's socket (a workload setting), the data inside the SYN reaches the
// application in plaintext. C is the attacker, B a mesh pod whose app listens with TFO.

import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lineProcess, MeshLab, sansFor, type Daemon, type LineProcess } from '../../src/demo/index.js'
import { envoyForTests } from '../envoy-support.js'
import { nftCounter, requireNetns, waitFor } from './netns.js'

const describeNetns = requireNetns()
const envoy = envoyForTests()
const marker = (tag: string): string => `${tag}-${randomBytes(6).toString('hex')}`

const MTLS_PORT = 8080
const TLS_PORT = 8443
const PLAIN_PORT = 7890

const planes = [
  { kind: 'builtin', prefix: 'pmtw', subnet: 88, skip: undefined },
  { kind: 'envoy', prefix: 'pmtwv', subnet: 89, skip: envoy.skip },
] as const

// The workload: echoes, reports the first bytes of each connection, and has TCP Fast
// Open on its listening sockets (TCP_FASTOPEN, TCP_FASTOPEN_NO_COOKIE) — the
// application's choice, which the mesh cannot forbid.
const TFO_APP = `
const net = require('node:net'), koffi = require('koffi')
const setsockopt = koffi.load('libc.so.6').func('int setsockopt(int fd, int level, int optname, const void *optval, uint32_t optlen)')
const int = (v) => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b }
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
for (const port of [${MTLS_PORT}, ${TLS_PORT}, ${PLAIN_PORT}]) {
  const s = net.createServer({ allowHalfOpen: true }, (c) => {
    let first = true
    c.on('data', (d) => { if (first) out({ ev: 'data', port, data: d.toString('latin1') }); first = false; c.write(d) })
    c.on('end', () => c.end())
    c.on('error', () => {})
  })
  s.listen({ port, host: '::', ipv6Only: false }, () => {
    if (setsockopt(s._handle.fd, 6, 23, int(16), 4) !== 0) throw new Error('TCP_FASTOPEN')
    if (setsockopt(s._handle.fd, 6, 34, int(1), 4) !== 0) throw new Error('TCP_FASTOPEN_NO_COOKIE')
    out({ ev: 'listening', port })
  })
}
`

// The attacker's client, from a chosen source port. "close": connect, send five bytes
// that are not TLS, read until the peer closes, then close (the peer closed first: the
// TIME-WAIT is on its side). Five bytes, one TLS record header's worth: the peer's TLS
// stack reads all of them before it fails, so it closes with a FIN. With unread bytes
// left in its receive queue the kernel would answer the close with a reset, and a reset
// leaves no TIME-WAIT (Envoy did that with a longer request line). Otherwise: a TCP Fast Open SYN carrying the given bytes
// (TCP_FASTOPEN_CONNECT + TCP_FASTOPEN_NO_COOKIE: the first write goes into the SYN).
const CLIENT = `
const net = require('node:net'), koffi = require('koffi')
const libc = koffi.load('libc.so.6')
const socket = libc.func('int socket(int, int, int)')
const setsockopt = libc.func('int setsockopt(int fd, int level, int optname, const void *optval, uint32_t optlen)')
const [host, port, localPort, mode] = process.argv.slice(1)
const int = (v) => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b }
const fd = socket(net.isIPv6(host) ? 10 : 2, 1 | 0o4000 | 0o2000000, 0)
const set = (level, name, what) => { if (setsockopt(fd, level, name, int(1), 4) !== 0) throw new Error(what) }
set(1, 2, 'SO_REUSEADDR')
if (mode !== 'close') { set(6, 30, 'TCP_FASTOPEN_CONNECT'); set(6, 34, 'TCP_FASTOPEN_NO_COOKIE') }
const r = { connected: false, received: 0 }
const done = () => { process.stdout.write(JSON.stringify(r) + '\\n'); process.exit(0) }
const s = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true })
s.on('error', (e) => { r.error = e.code })
s.on('data', (d) => { r.received += d.length })
s.on('end', () => s.end())
s.on('close', done)
s.connect({ host, port: Number(port), localPort: Number(localPort) }, () => {
  r.connected = true
  s.write(mode === 'close' ? 'GET /' : mode)
})
setTimeout(() => { r.timeout = true; done() }, 1200)
`


interface AppEvent {
  readonly ev: string
  readonly port?: number
  readonly data?: string
}

for (const plane of planes) {
  const suite = plane.skip === undefined ? describeNetns : describe.skip
  suite(`closed while stopping and after a crash (TIME-WAIT + TCP Fast Open), ${plane.kind} data plane${plane.skip === undefined ? '' : ` (skipped: ${plane.skip})`}`, () => {
    let lab: MeshLab
    let app: LineProcess
    let b: { ipv4: string; ipv6: string }
    let nextPort = 43001

    const events = (): AppEvent[] =>
      app.lines.flatMap((l) => {
        try {
          return [JSON.parse(l) as AppEvent]
        } catch {
          return []
        }
      })
    const appSaw = (m: string): boolean => events().some((e) => e.ev === 'data' && (e.data ?? '').includes(m))

    const client = async (host: string, port: number, localPort: number, mode: string) => {
      const r = await lab.topology.exec('c', process.execPath, ['-e', CLIENT, host, String(port), String(localPort), mode], { timeoutMs: 10_000 })
      const line = r.stdout.trim().split('\n').pop() ?? ''
      if (r.code !== 0 || line === '') throw new Error(`client failed (exit ${r.code}): ${r.stderr}`)
      return JSON.parse(line) as { connected: boolean; received: number; error?: string; timeout?: boolean }
    }

    /**
     * Leaves a TIME-WAIT socket on B for C:port -> B:MTLS_PORT, one per family; returns the
     * ports. The precondition of the attack: without it the test would prove nothing. On a
     * loaded machine the client may give up before B closes (then the TIME-WAIT is on C's
     * side), so a family that missed is tried again on a fresh port, up to three times.
     */
    const timeWaits = async (): Promise<{ ipv4: number; ipv6: number }> => {
      const inTimeWait = async (port: number): Promise<boolean> => {
        const ss = (await lab.topology.exec('b', 'ss', ['-Htan', 'state', 'time-wait'])).stdout
        return new RegExp(`:${port}(\\s|$)`, 'm').test(ss)
      }
      const one = async (host: string): Promise<number> => {
        const tried: number[] = []
        for (let attempt = 0; attempt < 3; attempt++) {
          const port = nextPort++
          tried.push(port)
          await client(host, MTLS_PORT, port, 'close')
          if (await waitFor(() => inTimeWait(port), { timeoutMs: 5_000 })) return port
        }
        const ss = await lab.topology.exec('b', 'ss', ['-Htan'])
        throw new Error(`no TIME-WAIT on B for C:${tried.join('/')} -> ${host}:\n${ss.stdout}`)
      }
      const [ipv4, ipv6] = await Promise.all([one(b.ipv4), one(b.ipv6)])
      return { ipv4, ipv6 }
    }

    /** The attack on both families at once; answers whether the app saw either marker. */
    const attack = async (ports: { ipv4: number; ipv6: number }, tag: string) => {
      const m4 = marker(`${tag}-V4`)
      const m6 = marker(`${tag}-V6`)
      await Promise.all([client(b.ipv4, MTLS_PORT, ports.ipv4, m4), client(b.ipv6, MTLS_PORT, ports.ipv6, m6)])
      await new Promise((r) => setTimeout(r, 200))
      return { ipv4: appSaw(m4), ipv6: appSaw(m6) }
    }

    const noListener = async (): Promise<boolean> =>
      (await lab.topology.exec('b', 'ss', ['-Htln', `sport = :15006`])).stdout.trim() === ''

    const counter = (comment: string): Promise<number> => nftCounter(lab.topology, 'b', comment)

    const startDaemon = (): Daemon =>
      lab.startDaemon('b', [
        '--ingress', `public#${TLS_PORT}#false##plain#${PLAIN_PORT}#true`,
        '--tls-dir', lab.pki.tlsDir('b'),
        ...(plane.kind === 'builtin'
          ? ['--dataplane', 'builtin']
          : ['--dataplane', 'envoy', '--envoy-bin', envoy.path ?? 'envoy', '--work-dir', `${lab.workDir}/envoy-b-${nextPort}`]),
      ])

    beforeAll(async () => {
      lab = await MeshLab.create({ prefix: plane.prefix, subnet: plane.subnet, nodes: ['c', 'b'] })
      b = lab.node('b')
      // Server-side TFO is a per-namespace sysctl: the pod's own setting, here turned on.
      const sysctl = await lab.topology.exec('b', 'sysctl', ['-qw', 'net.ipv4.tcp_fastopen=3'])
      if (sysctl.code !== 0) throw new Error(`sysctl: ${sysctl.stderr}`)
      app = lineProcess(lab.topology.spawn('b', process.execPath, ['-e', TFO_APP]))
      for (const port of [MTLS_PORT, TLS_PORT, PLAIN_PORT]) {
        await app.waitFor((l) => l.includes('"listening"') && l.includes(`"port":${port}`), 10_000, `app on ${port}`)
      }
      await lab.pki.issue('b', sansFor(lab.node('b')))
    }, 60_000)

    afterAll(async () => {
      app?.kill('SIGKILL')
      await lab?.destroy()
    }, 60_000)

    it('control: a TFO SYN carrying data reaches the app on a port that is not redirected (#true), v4 and v6', async () => {
      const daemon = startDaemon()
      try {
        await daemon.waitReady()
        const m4 = marker('TFO-CONTROL-V4')
        const m6 = marker('TFO-CONTROL-V6')
        await Promise.all([client(b.ipv4, PLAIN_PORT, nextPort++, m4), client(b.ipv6, PLAIN_PORT, nextPort++, m6)])
        await new Promise((r) => setTimeout(r, 200))
        expect([appSaw(m4), appSaw(m6)]).toEqual([true, true])
      } finally {
        daemon.kill('SIGKILL')
        await daemon.exited
      }
    }, 40_000)

    it(`during the drain after SIGTERM, a TIME-WAIT SYN with TFO data reaches nothing (v4, v6); established connections keep flowing`, async () => {
      const daemon = startDaemon()
      try {
        await daemon.waitReady()
        const ports = await timeWaits()
        // A connection through the mesh that outlives SIGTERM: the drain lasts while it does.
        const heldMarker = marker('HELD')
        const held = lab.probe('c', { host: b.ipv4, port: TLS_PORT, tls: {}, marker: heldMarker, holdMs: 4_500, timeoutMs: 20_000 })
        await app.waitFor((l) => l.includes(heldMarker), 10_000, 'the held connection to reach the app')
        daemon.kill('SIGTERM')
        expect(await waitFor(noListener, { timeoutMs: 5_000, intervalMs: 20 })).toBe(true)
        expect(daemon.child.exitCode).toBeNull() // still draining
        expect(await attack(ports, 'TW-DRAIN')).toEqual({ ipv4: false, ipv6: false })
        const h = await held
        expect(h.error).toBeUndefined()
        expect(h.heartbeats).toBeGreaterThanOrEqual(3)
        expect(await daemon.exited).toBe(0)
      } finally {
        daemon.kill('SIGKILL')
        await daemon.exited
      }
    }, 60_000)

    it(`after SIGKILL, a TIME-WAIT SYN with TFO data reaches nothing (v4, v6): the drop takes it`, async () => {
      const daemon = startDaemon()
      let ports: { ipv4: number; ipv6: number }
      try {
        await daemon.waitReady()
        ports = await timeWaits()
      } finally {
        daemon.kill('SIGKILL')
        await daemon.exited
      }
      expect(await waitFor(noListener, { timeoutMs: 5_000, intervalMs: 20 })).toBe(true)
      const dropped = await counter('ingress without listener')
      expect(await attack(ports, 'TW-KILL')).toEqual({ ipv4: false, ipv6: false })
      expect(await counter('ingress without listener')).toBeGreaterThanOrEqual(dropped + 2)
    }, 60_000)
  })
}
