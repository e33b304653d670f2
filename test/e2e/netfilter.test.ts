// The rendered rulesets in a real kernel: client namespace C, server ("pod") namespace B,
// a plaintext app in B on 8080 and 9000 (TCP) and 8053 (UDP). No data plane runs here,
// so everything the mesh would redirect must be dropped: that is the fail-closed path.

import type { ChildProcess } from 'node:child_process'
import pino from 'pino'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { meshConfigFromStrings, type MeshConfig } from '../../src/config/index.js'
import { applyRuleset, netnsRunner, removeAll, renderBaseline, renderFinal, type Runner } from '../../src/netfilter/index.js'
import { rejected } from '../support.js'
import { createTopology, requireNetns, waitFor, type Topology } from './netns.js'

const describeNetns = requireNetns()
const log = pino({ level: 'silent' })

// Prints one JSON line per event, so the test can see exactly what reached the app.
const APP = `
const net = require('node:net'), dgram = require('node:dgram')
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
for (const port of [8080, 9000]) {
  net.createServer((c) => {
    c.on('data', (d) => out({ ev: 'data', port, data: d.toString() }))
    c.on('error', () => {})
  }).listen({ port, host: '::', ipv6Only: false }, () => out({ ev: 'listening', port }))
}
const u = dgram.createSocket({ type: 'udp6', ipv6Only: false })
u.on('message', (m) => out({ ev: 'data', port: 8053, data: m.toString() }))
u.bind(8053, '::', () => out({ ev: 'listening', port: 8053 }))
`

// Connects, sends the probe id, and after 1.5 s reports whether the connect succeeded.
const TCP_PROBE = `
const [host, port, id] = process.argv.slice(1)
let connected = false
const s = require('node:net').connect({ host, port: Number(port) }, () => { connected = true; s.write(id) })
s.on('error', () => {})
setTimeout(() => { process.stdout.write(JSON.stringify({ connected })); process.exit(0) }, 1500)
`
const UDP_PROBE = `
const [host, port, id] = process.argv.slice(1)
const s = require('node:dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4')
for (let i = 0; i < 3; i++) s.send(id, Number(port), host)
setTimeout(() => process.exit(0), 500)
`

// Stands in for the data plane: transparent listeners on the mesh ports that report the
// original destination of what nft tproxy hands them. Dual-stack sockets: IPV6_TRANSPARENT
// sets the same socket flag as IP_TRANSPARENT. Needs koffi (resolved from the repo root).
const TPROXY_LISTENERS = `
const net = require('node:net'), koffi = require('koffi')
const setsockopt = koffi.load('libc.so.6').func('int setsockopt(int fd, int level, int optname, const void *optval, uint32_t optlen)')
const one = Buffer.alloc(4); one.writeInt32LE(1)
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
for (const port of [15001, 15006, 15007]) {
  const s = net.createServer((c) => {
    c.on('data', (d) => out({ ev: 'data', port, data: d.toString(), local: c.localAddress, localPort: c.localPort }))
    c.on('error', () => {})
  })
  s.listen({ port, host: '::', ipv6Only: false }, () => {
    if (setsockopt(s._handle.fd, 41, 75, one, 4) !== 0) throw new Error('IPV6_TRANSPARENT failed')
    out({ ev: 'listening', port })
  })
}
`
// TCP_PROBE from a socket carrying SO_MARK (what the data plane does for its own connections).
const MARKED_PROBE = `
const [host, port, id, mark] = process.argv.slice(1)
const net = require('node:net'), koffi = require('koffi')
const libc = koffi.load('libc.so.6')
const socket = libc.func('int socket(int, int, int)')
const setsockopt = libc.func('int setsockopt(int fd, int level, int optname, const void *optval, uint32_t optlen)')
const fd = socket(host.includes(':') ? 10 : 2, 1 | 0o4000 | 0o2000000, 0)
const v = Buffer.alloc(4); v.writeInt32LE(Number(mark))
if (fd < 0 || setsockopt(fd, 1, 36, v, 4) !== 0) throw new Error('SO_MARK failed')
let connected = false
const s = new net.Socket({ fd, readable: true, writable: true })
s.connect({ host, port: Number(port) }, () => { connected = true; s.write(id) })
s.on('error', () => {})
setTimeout(() => { process.stdout.write(JSON.stringify({ connected })); process.exit(0) }, 1500)
`

interface App {
  readonly events: { ev: string; port: number; data?: string; local?: string; localPort?: number }[]
  readonly child: ChildProcess
}

function startApp(topo: Topology, node: string, script = APP): App {
  const child = topo.spawn(node, process.execPath, ['-e', script])
  const events: App['events'] = []
  let buf = ''
  child.stdout!.on('data', (b: Buffer) => {
    buf += b.toString()
    let i: number
    while ((i = buf.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buf.slice(0, i)))
      buf = buf.slice(i + 1)
    }
  })
  return { events, child }
}

let seq = 0
/** A TCP connect + send from `from` to host:port; did the bytes reach the app? */
async function probeTcp(topo: Topology, app: App, from: string, host: string, port: number, opts: { mark?: number; id?: string } = {}) {
  const id = opts.id ?? `probe-${++seq}`
  const args = opts.mark === undefined ? ['-e', TCP_PROBE, host, String(port), id] : ['-e', MARKED_PROBE, host, String(port), id, String(opts.mark)]
  const r = await topo.exec(from, process.execPath, args, { timeoutMs: 5000 })
  const { connected } = JSON.parse(r.stdout) as { connected: boolean }
  // Data that got through is written within milliseconds of the connect; the probe
  // already waited 1.5 s, this is only for the pipe from the app to us.
  await waitFor(() => app.events.some((e) => e.data === id), { timeoutMs: connected ? 1000 : 100 })
  return { connected, reached: app.events.some((e) => e.data === id && e.port === port) }
}

async function probeUdp(topo: Topology, app: App, from: string, host: string, port: number) {
  const id = `udp-${++seq}`
  await topo.exec(from, process.execPath, ['-e', UDP_PROBE, host, String(port), id], { timeoutMs: 5000 })
  await waitFor(() => app.events.some((e) => e.data === id), { timeoutMs: 300 })
  return { reached: app.events.some((e) => e.data === id) }
}

describeNetns('netfilter rulesets in a network namespace', () => {
  let topo: Topology
  let app: App
  let cApp: App
  let b: Runner
  let B4: string
  let B6: string

  const nftList = async (): Promise<string> => {
    const r = await topo.exec('b', 'nft', ['-s', 'list', 'table', 'inet', 'podvm_mesh'])
    return r.code === 0 ? r.stdout : `(exit ${r.code}) ${r.stderr}`
  }
  /** Packets counted by the rule whose comment is `comment`. */
  const counter = async (comment: string): Promise<number> => {
    const r = await topo.exec('b', 'nft', ['list', 'table', 'inet', 'podvm_mesh'])
    const line = r.stdout.split('\n').find((l) => l.includes(`comment "${comment}"`))
    return Number(/counter packets (\d+)/.exec(line ?? '')?.[1] ?? NaN)
  }
  const fwmarkRules = async (fam: '-4' | '-6'): Promise<number> => {
    const r = await topo.exec('b', 'ip', [fam, '-j', 'rule', 'show'])
    return (JSON.parse(r.stdout) as { fwmark?: string }[]).filter((e) => e.fwmark === '0x50e').length
  }
  const config = (ingress?: string): MeshConfig =>
    meshConfigFromStrings(ingress === undefined ? {} : { ingress: { value: ingress, source: 'test' } })

  beforeAll(async () => {
    topo = await createTopology({ prefix: 'pmnf', nodes: ['c', 'b'] })
    b = netnsRunner(topo.node('b').ns)
    B4 = topo.node('b').ipv4
    B6 = topo.node('b').ipv6
    app = startApp(topo, 'b')
    cApp = startApp(topo, 'c')
    for (const a of [app, cApp]) {
      const up = await waitFor(() => a.events.filter((e) => e.ev === 'listening').length === 3, { timeoutMs: 5000 })
      if (!up) throw new Error(`app did not start: ${JSON.stringify(a.events)}`)
    }
  })
  afterAll(async () => {
    await topo?.cleanup()
  })

  it('control: without rules, the probes do reach the app (TCP v4/v6, UDP)', async () => {
    const [t4, t6, u4] = await Promise.all([
      probeTcp(topo, app, 'c', B4, 8080),
      probeTcp(topo, app, 'c', B6, 8080),
      probeUdp(topo, app, 'c', B4, 8053),
    ])
    expect([t4, t6, u4]).toEqual([
      { connected: true, reached: true },
      { connected: true, reached: true },
      { reached: true },
    ])
  })

  it('baseline: no TCP or UDP reaches the app, IPv4 and IPv6', async () => {
    await applyRuleset(renderBaseline(), b, log)
    const [t4, t6, u4, u6] = await Promise.all([
      probeTcp(topo, app, 'c', B4, 8080),
      probeTcp(topo, app, 'c', B6, 8080),
      probeUdp(topo, app, 'c', B4, 8053),
      probeUdp(topo, app, 'c', B6, 8053),
    ])
    expect([t4, t6, u4, u6]).toEqual([
      { connected: false, reached: false },
      { connected: false, reached: false },
      { reached: false },
      { reached: false },
    ])
    expect(await counter('baseline: nothing inbound before the mesh is ready')).toBeGreaterThanOrEqual(4)
  })

  it('baseline: ICMPv6 neighbour discovery still works', async () => {
    await topo.exec('c', 'ip', ['-6', 'neigh', 'flush', 'dev', 'eth0'])
    await topo.exec('b', 'ip', ['-6', 'neigh', 'flush', 'dev', 'eth0'])
    await probeTcp(topo, app, 'c', B6, 8080) // C must resolve B first: NS to B, NA back
    const neigh = await topo.exec('c', 'ip', ['-6', 'neigh', 'show', B6, 'dev', 'eth0'])
    expect(neigh.stdout).toMatch(/lladdr [0-9a-f:]{17} .*(REACHABLE|STALE|DELAY|PROBE)/)
    expect(await counter('ICMPv6 neighbour discovery')).toBeGreaterThan(0)
  })

  it('final with no data plane listening: nothing reaches the app (the drop after tproxy), IPv4 and IPv6', async () => {
    await applyRuleset(renderFinal(config()), b, log)
    const [t4, t6, u6] = await Promise.all([
      probeTcp(topo, app, 'c', B4, 8080),
      probeTcp(topo, app, 'c', B6, 9000),
      probeUdp(topo, app, 'c', B6, 8053),
    ])
    expect([t4, t6, u6]).toEqual([{ connected: false, reached: false }, { connected: false, reached: false }, { reached: false }])
    expect(await counter('ingress without listener')).toBeGreaterThanOrEqual(2)
    expect(await counter('inbound non-tcp')).toBeGreaterThan(0)
  })

  it('why the drops are there: the same ruleset without them lets a tproxy miss reach the app', async () => {
    const full = renderFinal(config())
    const withoutDrop = full.nft
      .split('\n')
      .filter((l) => !/ drop comment /.test(l))
      .join('\n')
    expect(withoutDrop).not.toBe(full.nft)
    await applyRuleset({ ...full, nft: withoutDrop }, b, log)
    expect(await probeTcp(topo, app, 'c', B4, 8080)).toEqual({ connected: true, reached: true })
  })

  it('a #true port reaches the app in plaintext; the other ports still do not', async () => {
    await applyRuleset(renderFinal(config('metrics#9000#true')), b, log)
    const [p4, p6, other] = await Promise.all([
      probeTcp(topo, app, 'c', B4, 9000),
      probeTcp(topo, app, 'c', B6, 9000),
      probeTcp(topo, app, 'c', B4, 8080),
    ])
    expect([p4, p6, other]).toEqual([
      { connected: true, reached: true },
      { connected: true, reached: true },
      { connected: false, reached: false },
    ])
  })

  it('applying the same ruleset twice is idempotent (same table, one ip rule per family)', async () => {
    const ruleset = renderFinal(config('metrics#9000#true##api#8443#false'))
    await applyRuleset(ruleset, b, log)
    const first = await nftList()
    await applyRuleset(ruleset, b, log)
    expect(await nftList()).toBe(first)
    expect(first).toContain('tcp dport 8443 fib daddr type local tproxy to :15007')
    const tables = await topo.exec('b', 'nft', ['list', 'tables'])
    expect(tables.stdout.trim().split('\n')).toEqual(['table inet podvm_mesh'])
    expect([await fwmarkRules('-4'), await fwmarkRules('-6')]).toEqual([1, 1])
  })

  it('a script nft rejects leaves the previous table unchanged', async () => {
    const before = await nftList()
    const good = renderFinal(config())
    const bad = { ...good, nft: good.nft.replace('tproxy to :15006', 'tproxy too :15006') }
    expect(bad.nft).not.toBe(good.nft)
    const err = await rejected(applyRuleset(bad, b, log))
    expect(err).toMatchObject({ code: 'NETFILTER_APPLY_FAILED' })
    expect(err.details.stderr).toMatch(/Error/)
    expect(await nftList()).toBe(before)
  })

  it('transparent egress with no capture listener: outbound TCP does not leave in plaintext; allow-listed destinations do', async () => {
    const C4 = topo.node('c').ipv4
    const C6 = topo.node('c').ipv6
    const cfg = meshConfigFromStrings({
      transparentEgress: { value: true, source: 'test' },
      allowPlaintext: { value: `[${C6}/128]:9000`, source: 'test' },
    })
    expect(cfg.transparentEgress.allowPlaintext).toHaveLength(1)
    await applyRuleset(renderFinal(cfg), b, log)
    const [captured4, captured6, allowed6, udp] = await Promise.all([
      probeTcp(topo, cApp, 'b', C4, 8080),
      probeTcp(topo, cApp, 'b', C6, 8080),
      probeTcp(topo, cApp, 'b', C6, 9000),
      probeUdp(topo, cApp, 'b', C4, 8053),
    ])
    expect([captured4, captured6, allowed6, udp]).toEqual([
      { connected: false, reached: false },
      { connected: false, reached: false },
      { connected: true, reached: true },
      { reached: true },
    ])
    expect(await counter('egress capture without listener')).toBeGreaterThanOrEqual(2)
  })

  it('with transparent listeners: ingress is captured with its original destination (v4, v6); a #false port goes to 15007', async () => {
    const tp = startApp(topo, 'b', TPROXY_LISTENERS)
    try {
      expect(await waitFor(() => tp.events.filter((e) => e.ev === 'listening').length === 3, { timeoutMs: 5000 })).toBe(true)
      await applyRuleset(renderFinal(config('api#8443#false')), b, log)
      const ids = ['in-v4', 'in-v6', 'in-tls'].map((x) => `${x}-${++seq}`)
      const probes = await Promise.all([
        probeTcp(topo, app, 'c', B4, 8080, { id: ids[0] }),
        probeTcp(topo, app, 'c', B6, 8080, { id: ids[1] }),
        probeTcp(topo, app, 'c', B4, 8443, { id: ids[2] }),
      ])
      // connected (to the listener), but nothing reached the app itself
      expect(probes).toEqual([
        { connected: true, reached: false },
        { connected: true, reached: false },
        { connected: true, reached: false },
      ])
      const got = (id: string | undefined) => tp.events.find((e) => e.data === id)
      expect(got(ids[0])).toMatchObject({ port: 15006, local: `::ffff:${B4}`, localPort: 8080 })
      expect(got(ids[1])).toMatchObject({ port: 15006, local: B6, localPort: 8080 })
      expect(got(ids[2])).toMatchObject({ port: 15007, local: `::ffff:${B4}`, localPort: 8443 })
      expect(await counter('established flow of a data plane socket')).toBeGreaterThan(0)
    } finally {
      tp.child.kill('SIGKILL')
    }
  })

  it('with a capture listener: outbound TCP is captured with its original destination (v4, v6); SO_MARK 0x50d sockets are not', async () => {
    const tp = startApp(topo, 'b', TPROXY_LISTENERS)
    try {
      expect(await waitFor(() => tp.events.filter((e) => e.ev === 'listening').length === 3, { timeoutMs: 5000 })).toBe(true)
      await applyRuleset(renderFinal(meshConfigFromStrings({ transparentEgress: { value: true, source: 'test' } })), b, log)
      const C4 = topo.node('c').ipv4
      const C6 = topo.node('c').ipv6
      const ids = ['out-v4', 'out-v6'].map((x) => `${x}-${++seq}`)
      const [v4, v6, marked4, marked6] = await Promise.all([
        probeTcp(topo, cApp, 'b', C4, 8080, { id: ids[0] }),
        probeTcp(topo, cApp, 'b', C6, 8080, { id: ids[1] }),
        probeTcp(topo, cApp, 'b', C4, 8080, { mark: 0x50d }),
        probeTcp(topo, cApp, 'b', C6, 8080, { mark: 0x50d }),
      ])
      expect([v4, v6, marked4, marked6]).toEqual([
        { connected: true, reached: false },
        { connected: true, reached: false },
        { connected: true, reached: true },
        { connected: true, reached: true },
      ])
      expect(tp.events.find((e) => e.data === ids[0])).toMatchObject({ port: 15001, local: `::ffff:${C4}`, localPort: 8080 })
      expect(tp.events.find((e) => e.data === ids[1])).toMatchObject({ port: 15001, local: C6, localPort: 8080 })
    } finally {
      tp.child.kill('SIGKILL')
    }
  })

  it('removeAll leaves no table, no fwmark rule, no route in table 150; twice is fine', async () => {
    await removeAll(b)
    await removeAll(b)
    const list = await topo.exec('b', 'nft', ['list', 'tables'])
    expect(list.stdout).not.toContain('podvm_mesh')
    expect([await fwmarkRules('-4'), await fwmarkRules('-6')]).toEqual([0, 0])
    for (const fam of ['-4', '-6']) {
      const r = await topo.exec('b', 'ip', [fam, 'route', 'show', 'table', '150'])
      expect(r.stdout.trim()).toBe('')
    }
    // and the app is reachable again, as before any ruleset
    expect(await probeTcp(topo, app, 'c', B4, 8080)).toEqual({ connected: true, reached: true })
  })
})
