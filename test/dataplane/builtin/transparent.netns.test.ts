// Transparent ingress for real: two namespaces on a bridge; in `s` an nft tproxy rule
// sends every inbound TCP connection to the data plane (15006, or 15007 for port
// 8081), which runs as its own process from this checkout's sources; a plaintext
// app listens on 8080/8081. A client in `c` speaks TLS to s:8080 as if the app did.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { MESH_SOCKET_MARK, TPROXY_MARK } from '../../../src/config/types.js'
import { requireNetns, createTopology, type Topology } from '../../e2e/netns.js'
import { createTestPki, writeContrastLayout } from '../../fixtures/pki.js'
import { NODE, ingressRuleset, installTproxy, netnsScript, startApp, startDataPlane, type DataPlaneProcess } from '../netns/harness.js'

// The client pod: its own outbound TCP (not the mesh's, marked ${MESH_SOCKET_MARK}) is
// routed to lo and handed to the egress capture listener.
const CAPTURE_RULESET = `
table inet pmdp {
  chain output {
    type route hook output priority mangle; policy accept;
    meta mark ${MESH_SOCKET_MARK} accept
    ip daddr 127.0.0.0/8 accept
    ip6 daddr ::1 accept
    fib daddr type local accept
    meta l4proto tcp meta mark set ${TPROXY_MARK}
  }
  chain prerouting {
    type filter hook prerouting priority mangle; policy accept;
    meta mark ${TPROXY_MARK} meta l4proto tcp tproxy to :15001 accept
  }
}
`

interface ClientResult {
  readonly secure: boolean
  readonly received: string
  readonly error?: string
  readonly timeout?: boolean
}

const describeNetns = requireNetns()

describeNetns('built-in data plane, transparent ingress in a network namespace', () => {
  let topo: Topology
  let dir: string
  let server: DataPlaneProcess
  let caFile: string
  let cliDir: string
  let strangerDir: string

  const client = async (host: string, port: number, certDir: string, payload: string): Promise<ClientResult> => {
    const r = await topo.exec('c', NODE, [netnsScript('tls-client.mjs'), host, String(port), caFile, certDir, payload], { timeoutMs: 15_000 })
    if (r.code !== 0) throw new Error(`client failed (${r.code}): ${r.stderr}`)
    return JSON.parse(r.stdout.trim()) as ClientResult
  }

  beforeAll(async () => {
    topo = await createTopology({ prefix: 'pmdp', nodes: ['c', 's'] })
    const s = topo.node('s')
    dir = await mkdtemp(join(tmpdir(), 'pmdp-'))
    const pki = await createTestPki('mesh')
    const stranger = await createTestPki('stranger')
    const srvDir = join(dir, 'server')
    cliDir = join(dir, 'client')
    strangerDir = join(dir, 'stranger')
    await writeContrastLayout(srvDir, pki, await pki.issue({ dns: ['s.mesh'], ip: [s.ipv4, s.ipv6] }))
    await writeContrastLayout(cliDir, pki, await pki.issue({ dns: ['c.mesh'] }))
    await writeContrastLayout(strangerDir, stranger, await stranger.issue({ dns: ['c.mesh'] }))
    caFile = join(srvDir, 'mesh-ca.pem')

    await installTproxy(topo, 's', ingressRuleset('pmdp'))

    await startApp(topo, 's')
    server = await startDataPlane(topo, 's', srvDir)
  })

  afterAll(async () => {
    await topo?.cleanup()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it('holds a connection that arrives before certificates and serves it once they are loaded (IPv4)', async () => {
    const s = topo.node('s')
    const pending = client(s.ipv4, 8080, cliDir, 'early')
    let settled = false
    void pending.then(() => (settled = true))
    const deadline = Date.now() + 5000
    while ((await server.stats()).connectionsActive < 1) {
      if (Date.now() > deadline) throw new Error('connection never reached the data plane')
    }
    await new Promise((r) => setTimeout(r, 300))
    expect(settled).toBe(false)
    await server.out.next((o) => o.loaded === true, server.command('load'))
    expect(await pending).toEqual({ secure: true, received: '[8080]early' })
  })

  it('terminates mTLS and forwards to the original destination port (IPv4 and IPv6)', async () => {
    const s = topo.node('s')
    expect(await client(s.ipv4, 8080, cliDir, 'ping4')).toEqual({ secure: true, received: '[8080]ping4' })
    expect(await client(s.ipv6, 8080, cliDir, 'ping6')).toEqual({ secure: true, received: '[8080]ping6' })
  })

  it('refuses a client without a certificate on 15006', async () => {
    const r = await client(topo.node('s').ipv4, 8080, '-', 'anonymous')
    expect(r.received).toBe('')
    expect(r.error).toBeDefined()
  })

  it('refuses a client whose certificate does not chain to the mesh CA', async () => {
    const r = await client(topo.node('s').ipv6, 8080, strangerDir, 'stranger')
    expect(r.received).toBe('')
  })

  it('accepts a client without a certificate on 15007 (port 8081)', async () => {
    expect(await client(topo.node('s').ipv4, 8081, '-', 'open')).toEqual({ secure: true, received: '[8081]open' })
  })

  it('refuses a connection addressed to the mesh port itself (loop)', async () => {
    const r = await client(topo.node('s').ipv4, 15006, cliDir, 'loop')
    expect(r.received).toBe('')
    expect(r.secure).toBe(false)
  })

  it('closes a connection that never completes a handshake after handshakeMs', async () => {
    const r = await topo.exec('c', NODE, [netnsScript('tcp-client.mjs'), topo.node('s').ipv4, '8080', '-'], { timeoutMs: 15_000 })
    const result = JSON.parse(r.stdout.trim()) as { received: string; afterMs: number; timeout?: boolean }
    expect(result.received).toBe('')
    expect(result.timeout).toBeUndefined()
    expect(result.afterMs).toBeGreaterThanOrEqual(900) // dataplane-main.ts: handshakeMs 1000
  })

  it('counted all of it', async () => {
    const st = await server.stats()
    expect(st.handshakesCompleted).toEqual({ ingress: 3, 'ingress-no-client-auth': 1 })
    expect(st.failures).toEqual({ NO_CLIENT_CERT: 1, UNTRUSTED_PEER: 1, LOOP: 1, HANDSHAKE_TIMEOUT: 1 })
    expect(st.connectionsAccepted).toEqual({ ingress: 7, 'ingress-no-client-auth': 1 })
    expect(st.connectionsActive).toBe(0)
    expect(st.bytesIn).toBe('early'.length + 'ping4'.length + 'ping6'.length + 'open'.length)
  })

  it('captures the client pod\'s plaintext egress and carries it over mTLS to the server pod (IPv4 and IPv6)', async () => {
    await installTproxy(topo, 'c', CAPTURE_RULESET)
    const capture = await startDataPlane(topo, 'c', cliDir, { capture: true })
    await capture.out.next((o) => o.loaded === true, capture.command('load'))
    const serverBefore = await server.stats()
    const s = topo.node('s')
    for (const [host, payload] of [
      [s.ipv4, 'plain4'],
      [s.ipv6, 'plain6'],
    ] as const) {
      const r = await topo.exec('c', NODE, [netnsScript('tcp-client.mjs'), host, '8080', payload], { timeoutMs: 15_000 })
      expect(JSON.parse(r.stdout.trim())).toEqual({ received: `[8080]${payload}` })
    }
    const st = await capture.stats()
    expect(st.handshakesCompleted).toEqual({ 'egress-capture': 2 })
    expect(st.failures).toEqual({})
    // The server pod saw two more mTLS handshakes: the bytes were not plaintext on the wire.
    const serverAfter = await server.stats()
    expect(serverAfter.handshakesCompleted.ingress).toBe(serverBefore.handshakesCompleted.ingress + 2)
  })
})
