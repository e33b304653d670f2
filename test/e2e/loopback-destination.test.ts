// Loopback addresses are the pod's own, but only the pod itself may reach them: an app
// binds 127.0.0.1 precisely to keep a service off the network. The kernel drops a packet
// for 127.0.0.0/8 arriving on eth0 only after prerouting, in its routing decision, and
// not at all when `route_localnet` is set (a pod sysctl some workloads use for DNAT to
// localhost). The ruleset must not depend on that: here the attacker X routes
// 127.0.0.0/8 to pod B over the bridge, B has route_localnet=1, and neither B's
// loopback-only app (on a #true port) nor the mesh's ingress listener (which would relay
// a decrypted stream to that loopback service) may see the attacker's bytes.

import type { ChildProcess } from 'node:child_process'
import pino from 'pino'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { meshConfigFromStrings } from '../../src/config/index.js'
import { applyRuleset, netnsRunner, renderBaseline, renderFinal, type Runner } from '../../src/netfilter/index.js'
import { createTopology, requireNetns, waitFor, type Topology } from './netns.js'

const describeNetns = requireNetns()
const log = pino({ level: 'silent' })

// B's app on 127.0.0.1 only, and a stand-in for the data plane's transparent ingress
// listener (IPV6_TRANSPARENT on a dual-stack socket), each reporting what it receives.
const B_SIDE = `
const net = require('node:net'), koffi = require('koffi')
const setsockopt = koffi.load('libc.so.6').func('int setsockopt(int fd, int level, int optname, const void *optval, uint32_t optlen)')
const one = Buffer.alloc(4); one.writeInt32LE(1)
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
const serve = (port, host, transparent) => {
  const s = net.createServer((c) => {
    c.on('data', (d) => out({ ev: 'data', port, data: d.toString(), local: c.localAddress }))
    c.on('error', () => {})
  })
  s.listen({ port, host, ipv6Only: false }, () => {
    if (transparent && setsockopt(s._handle.fd, 41, 75, one, 4) !== 0) throw new Error('IPV6_TRANSPARENT failed')
    out({ ev: 'listening', port })
  })
}
serve(9000, '127.0.0.1', false)
serve(8080, '127.0.0.1', false)
serve(15006, '::', true)
`

const PROBE = `
const [host, port, id] = process.argv.slice(1)
let connected = false
const s = require('node:net').connect({ host, port: Number(port) }, () => { connected = true; s.write(id) })
s.on('error', () => {})
setTimeout(() => { process.stdout.write(JSON.stringify({ connected })); process.exit(0) }, 1500)
`

describeNetns('packets for loopback addresses from outside the pod', () => {
  let topo: Topology
  let b: Runner
  let child: ChildProcess
  const events: { ev: string; port: number; data?: string; local?: string }[] = []
  let seq = 0

  /** X connects to host:port and sends an id; where did the id arrive in B? */
  const probe = async (host: string, port: number) => {
    const id = `lo-probe-${++seq}`
    const r = await topo.exec('x', process.execPath, ['-e', PROBE, host, String(port), id], { timeoutMs: 5000 })
    const { connected } = JSON.parse(r.stdout) as { connected: boolean }
    await waitFor(() => events.some((e) => e.data === id), { timeoutMs: connected ? 1000 : 100 })
    return { connected, receivedOn: events.filter((e) => e.data === id).map((e) => `${e.local}:${e.port}`) }
  }
  const counter = async (comment: string): Promise<number> => {
    const r = await topo.exec('b', 'nft', ['list', 'table', 'inet', 'podvm_mesh'])
    const line = r.stdout.split('\n').find((l) => l.includes(`comment "${comment}"`))
    return Number(/counter packets (\d+)/.exec(line ?? '')?.[1] ?? NaN)
  }

  beforeAll(async () => {
    topo = await createTopology({ prefix: 'pmlo', nodes: ['x', 'b'], subnet: 93 })
    b = netnsRunner(topo.node('b').ns)
    const must = async (node: string, cmd: string, args: string[]) => {
      const r = await topo.exec(node, cmd, args)
      if (r.code !== 0) throw new Error(`${node}: ${cmd} ${args.join(' ')}: ${r.stderr}`)
    }
    await must('b', 'sysctl', ['-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.eth0.route_localnet=1'])
    // X sends to 127.0.0.0/8 through B: no loopback address of its own (so no local
    // 127/8 route), a route via B, and B's answers from 127.0.0.1 accepted on its eth0.
    await must('x', 'ip', ['addr', 'flush', 'dev', 'lo'])
    await must('x', 'ip', ['route', 'add', '127.0.0.0/8', 'via', topo.node('b').ipv4, 'dev', 'eth0'])
    await must('x', 'sysctl', ['-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.eth0.route_localnet=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0'])
    child = topo.spawn('b', process.execPath, ['-e', B_SIDE])
    let buf = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      buf += chunk.toString()
      let i: number
      while ((i = buf.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buf.slice(0, i)))
        buf = buf.slice(i + 1)
      }
    })
    if (!(await waitFor(() => events.filter((e) => e.ev === 'listening').length === 3, { timeoutMs: 5000 }))) {
      throw new Error(`B's listeners did not start: ${JSON.stringify(events)}`)
    }
  })
  afterAll(async () => {
    await topo?.cleanup()
  })

  it("control: without rules (none yet), X reaches B's loopback-only app (route_localnet is on)", async () => {
    expect(await probe('127.0.0.1', 9000)).toEqual({ connected: true, receivedOn: ['127.0.0.1:9000'] })
  })

  it('final ruleset: neither the #true port nor the ingress listener gets them; B’s own address still works', async () => {
    await applyRuleset(renderFinal(meshConfigFromStrings({ ingress: { value: 'metrics#9000#true', source: 'test' } })), b, log)
    const passthrough = await probe('127.0.0.1', 9000)
    const redirected = await probe('127.0.0.1', 8080)
    expect({ passthrough, redirected }).toEqual({
      passthrough: { connected: false, receivedOn: [] },
      redirected: { connected: false, receivedOn: [] },
    })
    expect(await counter('loopback address from outside')).toBeGreaterThanOrEqual(2)
    // Control in the same ruleset: B's own address on 8080 goes to the ingress listener.
    expect(await probe(topo.node('b').ipv4, 8080)).toMatchObject({ connected: true, receivedOn: [`::ffff:${topo.node('b').ipv4}:15006`] })
  })

  it('baseline: dropped as well, by the same rule', async () => {
    await applyRuleset(renderBaseline(), b, log)
    expect(await probe('127.0.0.1', 9000)).toEqual({ connected: false, receivedOn: [] })
    expect(await counter('loopback address from outside')).toBeGreaterThanOrEqual(1)
  })
})
