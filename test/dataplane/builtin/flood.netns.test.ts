// The built-in data plane under connection floods, and per-listener TLS sessions, for
// real: two namespaces on a bridge; in `s` an nft tproxy rule sends inbound TCP to the
// data plane (15006, or 15007 for port 8081), which runs as its own process with small
// pending limits; a plaintext app listens on 8080/8081. Clients in `c` open idle
// connections (from several source addresses) and real TLS connections.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { requireNetns, createTopology, type Topology } from '../../e2e/netns.js'
import { createTestPki, writeContrastLayout } from '../../fixtures/pki.js'
import { NODE, ingressRuleset, installTproxy, netnsScript, startApp, startDataPlane, type DataPlaneProcess, type LineReader, type ResumeExchange } from '../netns/harness.js'

/** Small limits, so a handful of connections floods the listener. */
const LIMITS = { pendingPerListener: 6, pendingPerSource: 4 }
const REFUSAL_LOG = { burst: 3, intervalMs: 1500 }

interface Idle {
  readonly source?: string
  readonly open: boolean
  readonly ended: boolean
  readonly error?: string
}

/** Still open in both directions: shed connections end (FIN), refused ones are reset. */
const alive = (c: Idle): boolean => c.open && !c.ended

const describeNetns = requireNetns()

describeNetns('built-in data plane under a connection flood, and per-listener TLS sessions', () => {
  let topo: Topology
  let dir: string
  let dp: DataPlaneProcess
  let logs: LineReader
  let caFile: string
  let cliDir: string
  const extraSources = ['10.83.0.101', '10.83.0.102', '10.83.0.103']

  const command = async (line: string, key: string): Promise<Record<string, any>> => {
    return dp.out.next((o) => key in o, dp.command(line))
  }
  let loaded = false
  const load = async (): Promise<void> => {
    if (!loaded) await command('load', 'loaded')
    loaded = true
  }
  const stats = async (): Promise<Record<string, any>> => (await command('stats', 'stats')).stats
  const idle = async (count: number, holdMs: number, sources: string[] = []): Promise<Idle[]> => {
    const r = await topo.exec('c', NODE, [netnsScript('idle-clients.mjs'), topo.node('s').ipv4, '8080', String(count), String(holdMs), ...sources], {
      timeoutMs: 30_000,
    })
    const parsed = JSON.parse(r.stdout.trim()) as { connections?: Idle[] }
    if (parsed.connections === undefined) throw new Error(`idle clients: ${r.stdout} ${r.stderr}`)
    return parsed.connections
  }
  const settled = async (): Promise<void> => {
    const deadline = Date.now() + 5000
    while ((await stats()).connectionsActive !== 0) {
      if (Date.now() > deadline) throw new Error('connections did not close')
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  const resume = async (first: number, second: number, certDir: string): Promise<{ first: ResumeExchange; second: ResumeExchange }> => {
    const r = await topo.exec('c', NODE, [netnsScript('tls-resume-client.mjs'), topo.node('s').ipv4, String(first), String(second), caFile, certDir], {
      timeoutMs: 15_000,
    })
    return JSON.parse(r.stdout.trim()) as { first: ResumeExchange; second: ResumeExchange }
  }

  beforeAll(async () => {
    topo = await createTopology({ prefix: 'pmfl', nodes: ['c', 's'], subnet: 83 })
    const s = topo.node('s')
    for (const a of extraSources) {
      const r = await topo.exec('c', 'ip', ['addr', 'add', `${a}/24`, 'dev', 'eth0'])
      if (r.code !== 0) throw new Error(`ip addr add ${a}: ${r.stderr}`)
    }
    dir = await mkdtemp(join(tmpdir(), 'pmfl-'))
    const pki = await createTestPki('mesh')
    const srvDir = join(dir, 'server')
    cliDir = join(dir, 'client')
    await writeContrastLayout(srvDir, pki, await pki.issue({ dns: ['s.mesh'], ip: [s.ipv4, s.ipv6] }))
    await writeContrastLayout(cliDir, pki, await pki.issue({ dns: ['c.mesh'] }))
    caFile = join(srvDir, 'mesh-ca.pem')
    await installTproxy(topo, 's', ingressRuleset('pmfl'), ['4'])
    await startApp(topo, 's')
    // Long handshake and certificate waits: idle connections stay pending for the whole test.
    const options = { timeouts: { handshakeMs: 10_000, certificateWaitMs: 20_000 }, limits: LIMITS, refusalLog: REFUSAL_LOG }
    dp = await startDataPlane(topo, 's', srvDir, { options })
    logs = dp.stderr
  })

  afterAll(async () => {
    if (process.env.FLOOD_DEBUG === '1') process.stderr.write(`${logs?.lines.join('\n')}\n`)
    await topo?.cleanup()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('before certificates: refuses a source beyond its pending cap at once; the others stay held', async () => {
    const conns = await idle(6, 500)
    expect(conns.map(alive)).toEqual([true, true, true, true, false, false])
    expect(conns.slice(4).map((c) => c.error)).toEqual(['ECONNRESET', 'ECONNRESET'])
    expect((await stats()).failures).toEqual({ PENDING_PER_SOURCE: 2 })
    // A held connection is paused (nothing read before TLS), so the data plane only
    // notices that these four went away once certificates release them.
  })

  it('in the handshake: sheds the oldest pending connection when the listener is full; a legit client still gets through', async () => {
    await load()
    await settled()
    const before = (await stats()).connectionsAccepted.ingress as number
    // 9 idle connections from three sources (3 each, under the per-source cap), held 3 s.
    const flood = idle(9, 3000, extraSources)
    const deadline = Date.now() + 10_000
    while (((await stats()).connectionsAccepted.ingress as number) < before + 9) {
      if (Date.now() > deadline) throw new Error('flood never reached the data plane')
      await new Promise((r) => setTimeout(r, 25))
    }
    // A mesh client from the pod's own address while the listener is full of idle connections.
    const legit = await topo.exec('c', NODE, [netnsScript('tls-client.mjs'), topo.node('s').ipv4, '8080', caFile, cliDir, 'legit'], {
      timeoutMs: 15_000,
    })
    expect(JSON.parse(legit.stdout.trim())).toEqual({ secure: true, received: '[8080]legit' })
    const conns = await flood
    // Oldest first: 3 shed by the flood itself, 1 more by the legit client.
    expect(conns.map(alive)).toEqual([false, false, false, false, true, true, true, true, true])
    const st = await stats()
    expect(st.failures).toMatchObject({ PENDING_SHED: 4 })
    expect(st.handshakesCompleted).toEqual({ ingress: 1 })
    await settled()
  })

  it('rate-limits refusal logs per reason: the first few, then one line with the suppressed count', async () => {
    const from = logs.lines.length
    const conns = await idle(20, 200)
    expect(conns.filter(alive).length).toBe(LIMITS.pendingPerSource)
    await settled()
    const summary = await logs.next((o) => o.reason === 'PENDING_PER_SOURCE' && typeof o.suppressed === 'number', from, 5000)
    const lines = logs.json().slice(from)
    const single = lines.filter((o) => o.reason === 'PENDING_PER_SOURCE' && o.suppressed === undefined)
    expect(single.length).toBe(REFUSAL_LOG.burst)
    expect(summary.suppressed).toBe(20 - LIMITS.pendingPerSource - REFUSAL_LOG.burst)
  })

  it('a session from the #false listener does not resume on the mTLS listener, which demands a certificate', async () => {
    await load()
    const anonymous = await resume(8081, 8080, '-')
    expect(anonymous.first).toMatchObject({ secure: true, received: '[8081]first', gotSession: true })
    expect(anonymous.second.resumed).toBe(false)
    expect(anonymous.second.received).toBe('')
    expect(anonymous.second.error).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')
    // With a certificate the offered session is ignored too: a full handshake, then served.
    const withCert = await resume(8081, 8080, cliDir)
    expect(withCert.second).toMatchObject({ secure: true, resumed: false, received: '[8080]second' })
  })

  it('sessions still resume on the listener that issued them', async () => {
    await load()
    const open = await resume(8081, 8081, '-')
    expect(open.second).toMatchObject({ secure: true, resumed: true, received: '[8081]second' })
  })
})
