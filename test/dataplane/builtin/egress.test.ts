import net from 'node:net'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { BuiltinDataPlane } from '../../../src/dataplane/builtin/dataplane.js'
import type { DataPlaneSpec } from '../../../src/dataplane/spec.js'
import { sharedTestPki, type TestLeaf, type TestPki } from '../../fixtures/pki.js'
import {
  connectClient,
  egressListener,
  once,
  privileges,
  spec,
  startUpstream,
  testLogger,
  until,
  type Upstream,
} from '../harness.js'

let pki: TestPki
let otherPki: TestPki
let serverLeaf: TestLeaf // DNS:b.mesh
let clientLeaf: TestLeaf // DNS:a.mesh

beforeAll(async () => {
  pki = await sharedTestPki('mesh')
  otherPki = await sharedTestPki('other')
  serverLeaf = await pki.issue({ dns: ['b.mesh'] })
  clientLeaf = await pki.issue({ dns: ['a.mesh'] })
})

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function upstream(
  leaf: TestLeaf,
  onConnection?: Parameters<typeof startUpstream>[2],
  host?: string,
  tlsOptions?: Parameters<typeof startUpstream>[4],
): Promise<Upstream> {
  const u = await startUpstream(pki, leaf, onConnection, host, tlsOptions)
  cleanup.push(() => u.close())
  return u
}

async function dataPlane(s: DataPlaneSpec, withCredentials = true) {
  const { log, records } = testLogger()
  const states: string[] = []
  const dp = new BuiltinDataPlane(s, { log, ...privileges })
  dp.onStateChange((prev, next) => states.push(`${prev}->${next}`))
  cleanup.push(() => dp.destroy())
  if (withCredentials) dp.setCredentials(pki.material(clientLeaf))
  await dp.start()
  return { dp, records, states, addr: (name: string) => dp.addresses()[name]! }
}

async function egressTo(u: Upstream, verifyName = 'b.mesh', timeouts: Partial<DataPlaneSpec['timeouts']> = {}, withCredentials = true) {
  return dataPlane(spec([egressListener('b', '127.0.0.2', { host: '127.0.0.1', port: u.port }, verifyName)], timeouts), withCredentials)
}

describe('explicit egress', () => {
  it('carries bytes both ways and counts them', async () => {
    const u = await upstream(serverLeaf)
    const { dp, addr } = await egressTo(u)
    const c = connectClient(addr('b').address, addr('b').port)
    const payload = Buffer.alloc(1 << 20, 7)
    payload.write('hello', 0)
    c.socket.end(payload)
    expect(await c.ended).toBe(true)
    expect(c.received().equals(payload)).toBe(true)
    await until(() => dp.stats().connectionsActive === 0)
    const st = dp.stats()
    expect(st.connectionsAccepted).toEqual({ b: 1 })
    expect(st.handshakesCompleted).toEqual({ b: 1 })
    expect(st.bytesIn).toBe(payload.length)
    expect(st.bytesOut).toBe(payload.length)
    expect(st.failures).toEqual({})
    // The upstream saw the data plane's mesh identity.
    expect(u.peerCerts[0]?.subjectAltName).toBe('DNS:a.mesh')
  })

  it('propagates a half-close from the app: the server sees end, the app still gets the reply', async () => {
    let serverSawEnd = false
    const u = await upstream(serverLeaf, (s) => {
      const got: Buffer[] = []
      s.on('data', (b: Buffer) => got.push(b))
      s.on('end', () => {
        serverSawEnd = true
        setTimeout(() => s.end(`got ${Buffer.concat(got).toString()} after end`), 50)
      })
    })
    const { addr } = await egressTo(u)
    const c = connectClient(addr('b').address, addr('b').port)
    c.socket.end('ping')
    expect(await c.ended).toBe(true)
    expect(serverSawEnd).toBe(true)
    expect(c.received().toString()).toBe('got ping after end')
  })

  it('propagates a half-close from the server: the app gets end and can keep sending', async () => {
    const got: Buffer[] = []
    let serverDone!: () => void
    const serverSawEnd = new Promise<void>((r) => (serverDone = r))
    const u = await upstream(serverLeaf, (s) => {
      s.end('bye')
      s.on('data', (b: Buffer) => got.push(b))
      s.on('end', () => serverDone())
    })
    const { addr } = await egressTo(u)
    const c = connectClient(addr('b').address, addr('b').port)
    expect(await c.ended).toBe(true)
    expect(c.received().toString()).toBe('bye')
    c.socket.end('still here')
    await serverSawEnd
    expect(Buffer.concat(got).toString()).toBe('still here')
  })

  it('propagates a reset from the server to the app', async () => {
    const u = await upstream(serverLeaf, (s) => {
      s.once('data', () => (s as unknown as { _parent?: net.Socket })._parent?.resetAndDestroy?.() ?? s.destroy())
    })
    const { dp, addr } = await egressTo(u)
    const c = connectClient(addr('b').address, addr('b').port)
    c.socket.write('x')
    const closed = await c.closed
    expect(closed).toEqual({ hadError: true, code: 'ECONNRESET' })
    await until(() => dp.stats().failures.RESET === 1)
  })

  it('propagates a reset from the app to the server', async () => {
    let serverClosed!: (v: { code: string | undefined; ended: boolean }) => void
    const result = new Promise<{ code: string | undefined; ended: boolean }>((r) => (serverClosed = r))
    const u = await upstream(serverLeaf, (s) => {
      let code: string | undefined
      let ended = false
      s.on('error', (e: NodeJS.ErrnoException) => (code = e.code))
      s.on('end', () => (ended = true))
      s.once('close', () => serverClosed({ code, ended }))
      s.write('ready')
    })
    const { addr } = await egressTo(u)
    const c = connectClient(addr('b').address, addr('b').port)
    await once(c.socket, 'data')
    c.socket.resetAndDestroy()
    expect(await result).toEqual({ code: 'ECONNRESET', ended: false })
  })

  it('refuses an upstream whose certificate lacks the expected name (SAN mismatch), logging the names', async () => {
    const u = await upstream(await pki.issue({ dns: ['c.mesh'], cn: 'b.mesh' }))
    const { dp, addr, records } = await egressTo(u)
    const c = connectClient(addr('b').address, addr('b').port)
    c.socket.write('secret')
    expect((await c.closed).hadError).toBe(true)
    expect(c.received().length).toBe(0)
    expect(dp.stats().failures).toEqual({ SAN_MISMATCH: 1 })
    expect(dp.stats().handshakesCompleted).toEqual({})
    const rec = records.find((r) => r.reason === 'SAN_MISMATCH')
    expect(rec).toMatchObject({ level: 40, listener: 'b', expected: 'b.mesh', peer: { names: 'DNS:c.mesh' } })
  })

  it('an entry that opted out of secure naming (verifyName undefined) takes any mesh member, as Contrast does', async () => {
    const u = await upstream(await pki.issue({ dns: ['c.mesh'], cn: 'c.mesh' }), (s) => s.pipe(s))
    const { dp, addr } = await dataPlane(spec([egressListener('b', '127.0.0.2', { host: '127.0.0.1', port: u.port }, undefined)]))
    const c = connectClient(addr('b').address, addr('b').port)
    c.socket.write('hello')
    await until(() => c.received().toString() === 'hello')
    c.socket.end()
    await c.closed
    expect(dp.stats().failures).toEqual({})
  })

  it('does not honour wildcard SANs', async () => {
    const u = await upstream(await pki.issue({ dns: ['*.mesh'] }))
    const { dp, addr } = await egressTo(u)
    const c = connectClient(addr('b').address, addr('b').port)
    expect((await c.closed).hadError).toBe(true)
    expect(dp.stats().failures).toEqual({ SAN_MISMATCH: 1 })
  })

  it('accepts an IP literal name only as an IP SAN', async () => {
    const good = await upstream(await pki.issue({ ip: ['127.0.0.1'] }))
    const bad = await upstream(await pki.issue({ dns: ['127.0.0.1'] }))
    const { dp, addr } = await dataPlane(
      spec([
        egressListener('good', '127.0.0.3', { host: '127.0.0.1', port: good.port }, '127.0.0.1'),
        egressListener('bad', '127.0.0.3', { host: '127.0.0.1', port: bad.port }, '127.0.0.1'),
      ]),
    )
    const c1 = connectClient(addr('good').address, addr('good').port)
    c1.socket.end('ip')
    expect(await c1.ended).toBe(true)
    expect(c1.received().toString()).toBe('ip')
    expect(good.servernames).toEqual([false]) // no SNI for an IP literal
    const c2 = connectClient(addr('bad').address, addr('bad').port)
    expect((await c2.closed).hadError).toBe(true)
    expect(dp.stats().failures).toEqual({ SAN_MISMATCH: 1 })
  })

  it('speaks TLS 1.3 by default and still accepts a TLS 1.2 peer', async () => {
    const u13 = await upstream(serverLeaf)
    const u12 = await upstream(serverLeaf, undefined, undefined, { maxVersion: 'TLSv1.2' })
    const { addr } = await dataPlane(
      spec([
        egressListener('v13', '127.0.0.10', { host: '127.0.0.1', port: u13.port }, 'b.mesh'),
        egressListener('v12', '127.0.0.10', { host: '127.0.0.1', port: u12.port }, 'b.mesh'),
      ]),
    )
    for (const name of ['v13', 'v12']) {
      const c = connectClient(addr(name).address, addr(name).port)
      c.socket.end(name)
      expect(await c.ended).toBe(true)
      expect(c.received().toString()).toBe(name)
    }
    expect([...u13.protocols, ...u12.protocols]).toEqual(['TLSv1.3', 'TLSv1.2'])
  })

  it('refuses an upstream from another CA', async () => {
    const u = await startUpstream(otherPki, await otherPki.issue({ dns: ['b.mesh'] }))
    cleanup.push(() => u.close())
    const { dp, addr } = await egressTo(u)
    const c = connectClient(addr('b').address, addr('b').port)
    expect((await c.closed).hadError).toBe(true)
    expect(dp.stats().failures).toEqual({ UNTRUSTED_PEER: 1 })
    expect(u.accepted).toHaveLength(0)
  })

  it('sends SNI for a DNS upstream and resumes the TLS session on the next connection, not across credentials', async () => {
    const u = await upstream(await pki.issue({ dns: ['localhost'] }), undefined, '::')
    const { dp, addr } = await dataPlane(spec([egressListener('lh', '127.0.0.4', { host: 'localhost', port: u.port }, 'localhost')]))
    const round = async (i: number): Promise<void> => {
      const c = connectClient(addr('lh').address, addr('lh').port)
      c.socket.end(`round ${i}`)
      expect(await c.ended).toBe(true)
      expect(c.received().toString()).toBe(`round ${i}`)
    }
    await round(0)
    await round(1)
    // New credentials start a new session cache: no session verified under the old
    // ones is resumed.
    dp.setCredentials(pki.material(await pki.issue({ dns: ['a.mesh'] })))
    await round(2)
    expect(u.servernames).toEqual(['localhost', 'localhost', 'localhost'])
    expect(u.resumed).toEqual([false, true, false])
    expect(dp.stats().handshakesCompleted).toEqual({ lh: 3 })
  })

  it('keeps an established stream on the old certificate while new connections present the new one', async () => {
    const u = await upstream(serverLeaf)
    const { dp, addr } = await egressTo(u)
    const c1 = connectClient(addr('b').address, addr('b').port)
    c1.socket.write('one')
    await until(() => c1.received().toString() === 'one')
    const rotated = await pki.issue({ dns: ['a.mesh'] })
    dp.setCredentials(pki.material(rotated))
    const c2 = connectClient(addr('b').address, addr('b').port)
    c2.socket.end('two')
    expect(await c2.ended).toBe(true)
    expect(c2.received().toString()).toBe('two')
    c1.socket.end('-more')
    expect(await c1.ended).toBe(true)
    expect(c1.received().toString()).toBe('one-more')
    const fingerprints = u.peerCerts.map((c) => c?.fingerprint256)
    expect(fingerprints[0]).not.toBe(fingerprints[1])
    expect(fingerprints[1]).toBe(new (await import('node:crypto')).X509Certificate(rotated.certPem).fingerprint256)
    expect(dp.state).toBe('serving')
  })

  it('times out a handshake the upstream never answers', async () => {
    const held = new Set<net.Socket>()
    const silent = net.createServer((s) => {
      held.add(s)
      s.on('error', () => {})
    })
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    cleanup.push(() => new Promise<void>((r) => {
      for (const s of held) s.destroy()
      silent.close(() => r())
    }))
    const port = (silent.address() as net.AddressInfo).port
    const { dp, addr } = await dataPlane(spec([egressListener('b', '127.0.0.2', { host: '127.0.0.1', port }, 'b.mesh')], { handshakeMs: 200 }))
    const started = Date.now()
    const c = connectClient(addr('b').address, addr('b').port)
    expect((await c.closed).hadError).toBe(true)
    expect(Date.now() - started).toBeGreaterThanOrEqual(190)
    expect(dp.stats().failures).toEqual({ HANDSHAKE_TIMEOUT: 1 })
  })

  it('resets the app when the upstream refuses the TCP connection', async () => {
    const probe = net.createServer()
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r))
    const port = (probe.address() as net.AddressInfo).port
    await new Promise<void>((r) => probe.close(() => r()))
    const { dp, addr, records } = await dataPlane(spec([egressListener('b', '127.0.0.2', { host: '127.0.0.1', port }, 'b.mesh')]))
    const c = connectClient(addr('b').address, addr('b').port)
    expect(await c.closed).toEqual({ hadError: true, code: 'ECONNRESET' })
    expect(dp.stats().failures).toEqual({ UPSTREAM_CONNECT: 1 })
    expect(records.find((r) => r.reason === 'UPSTREAM_CONNECT')).toMatchObject({ code: 'ECONNREFUSED' })
  })
})

describe('connections before credentials', () => {
  it('holds a connection until credentials arrive, then serves it', async () => {
    const u = await upstream(serverLeaf)
    const { dp, addr, states } = await egressTo(u, 'b.mesh', {}, false)
    expect(dp.state).toBe('listening')
    const c = connectClient(addr('b').address, addr('b').port)
    c.socket.end('early')
    await until(() => dp.stats().connectionsActive === 1)
    await new Promise((r) => setTimeout(r, 100))
    expect(u.accepted).toHaveLength(0)
    dp.setCredentials(pki.material(clientLeaf))
    expect(await c.ended).toBe(true)
    expect(c.received().toString()).toBe('early')
    expect(states).toEqual(['created->listening', 'listening->serving'])
  })

  it('closes a held connection after certificateWaitMs when no credentials arrive', async () => {
    const u = await upstream(serverLeaf)
    const { dp, addr } = await egressTo(u, 'b.mesh', { certificateWaitMs: 150 }, false)
    const started = Date.now()
    const c = connectClient(addr('b').address, addr('b').port)
    c.socket.write('waiting')
    await c.closed
    expect(Date.now() - started).toBeGreaterThanOrEqual(140)
    expect(c.received().length).toBe(0)
    expect(u.accepted).toHaveLength(0)
    expect(dp.stats().failures).toEqual({ CERTIFICATE_WAIT: 1 })
    expect(dp.stats().connectionsActive).toBe(0)
  })
})
