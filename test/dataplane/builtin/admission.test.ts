// Bounds on unauthenticated connections: the bookkeeping alone, then the data plane
// with real sockets on loopback (egress listeners: held before certificates, and in a
// handshake with an upstream that never answers). Ingress, per source address, is
// exercised in flood.netns.test.ts.

import net from 'node:net'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { PendingConnections } from '../../../src/dataplane/builtin/admission.js'
import { BuiltinDataPlane } from '../../../src/dataplane/builtin/dataplane.js'
import type { DataPlaneSpec } from '../../../src/dataplane/spec.js'
import { sharedTestPki, type TestLeaf, type TestPki } from '../../fixtures/pki.js'
import { thrown } from '../../support.js'
import { connectClient, egressListener, privileges, spec, startUpstream, testLogger, until, type Client } from '../harness.js'

describe('PendingConnections', () => {
  it('refuses a source at its cap, counts sources across listeners, and frees a slot on release (once)', () => {
    const p = new PendingConnections({ pendingPerListener: 10, pendingPerSource: 2 })
    const a = p.admit('ingress', '10.0.0.1', () => {})
    const b = p.admit('ingress-no-client-auth', '10.0.0.1', () => {})
    expect(a.admitted && b.admitted).toBe(true)
    expect(p.admit('ingress', '10.0.0.1', () => {})).toEqual({ admitted: false, reason: 'PENDING_PER_SOURCE' })
    expect(p.admit('ingress', '10.0.0.2', () => {}).admitted).toBe(true)
    if (!a.admitted) throw new Error('unreachable')
    a.release()
    a.release()
    expect(p.count('ingress')).toBe(1)
    expect(p.admit('ingress', '10.0.0.1', () => {}).admitted).toBe(true)
    expect(p.admit('ingress', '10.0.0.1', () => {})).toMatchObject({ admitted: false })
    expect(p.count()).toBe(3)
  })

  it('sheds the oldest pending connection of a full listener, not of another listener', () => {
    const p = new PendingConnections({ pendingPerListener: 2, pendingPerSource: 100 })
    const shed: string[] = []
    p.admit('x', undefined, () => shed.push('x1'))
    p.admit('y', undefined, () => shed.push('y1'))
    const x2 = p.admit('x', undefined, () => shed.push('x2'))
    p.admit('x', undefined, () => shed.push('x3'))
    expect(shed).toEqual(['x1'])
    if (!x2.admitted) throw new Error('unreachable')
    x2.release() // authenticated: no longer a candidate
    p.admit('x', undefined, () => shed.push('x4'))
    p.admit('x', undefined, () => shed.push('x5'))
    expect(shed).toEqual(['x1', 'x3'])
    expect(p.count('x')).toBe(2)
    expect(p.count('y')).toBe(1)
  })

  it('a shed connection frees its source slot', () => {
    const p = new PendingConnections({ pendingPerListener: 1, pendingPerSource: 1 })
    p.admit('ingress', '10.0.0.1', () => {})
    expect(p.admit('ingress', '10.0.0.2', () => {}).admitted).toBe(true) // sheds 10.0.0.1's
    expect(p.admit('ingress', '10.0.0.1', () => {}).admitted).toBe(true)
  })

  it.each([0, -1, 1.5, Number.NaN])('rejects a limit of %s, naming it', (bad) => {
    expect(thrown(() => new PendingConnections({ pendingPerListener: bad, pendingPerSource: 1 }))).toMatchObject({
      code: 'DATAPLANE_SPEC',
      details: { pendingPerListener: bad },
    })
  })
})

let pki: TestPki
let clientLeaf: TestLeaf
beforeAll(async () => {
  pki = await sharedTestPki('mesh')
  clientLeaf = await pki.issue({ dns: ['a.mesh'] })
})

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

function dataPlane(s: DataPlaneSpec, pendingPerListener: number) {
  const { log, records } = testLogger()
  const dp = new BuiltinDataPlane(s, { log, ...privileges, limits: { pendingPerListener } })
  cleanup.push(() => dp.destroy())
  return { dp, records }
}

/** Opens connections one after another, each accepted by the data plane before the next. */
async function openIdle(address: string, port: number, n: number, accepted: () => number): Promise<Client[]> {
  const clients: Client[] = []
  for (let i = 0; i < n; i++) {
    const before = accepted()
    const c = connectClient(address, port)
    cleanup.push(() => c.socket.destroy())
    clients.push(c)
    await until(() => accepted() > before)
  }
  return clients
}

/** A TCP server that accepts and never says anything: every TLS handshake to it hangs. */
async function silentUpstream(): Promise<number> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanup.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy()
        server.close(() => r())
      }),
  )
  return (server.address() as net.AddressInfo).port
}

const isOpen = (c: Client): boolean => !c.socket.destroyed

describe('the data plane under a flood of unauthenticated connections (loopback)', () => {
  it('before certificates: a full listener sheds its oldest held connection for each new one', async () => {
    const s = spec([egressListener('b', '127.0.0.6', { host: '127.0.0.1', port: 1 }, 'b.mesh')], { certificateWaitMs: 20_000 })
    const { dp, records } = dataPlane(s, 3)
    await dp.start()
    const { address, port } = dp.addresses().b!
    const clients = await openIdle(address, port, 5, () => dp.stats().connectionsAccepted.b ?? 0)
    await until(() => clients.filter(isOpen).length === 3)
    expect(clients.map(isOpen)).toEqual([false, false, true, true, true])
    expect(dp.stats()).toMatchObject({ failures: { PENDING_SHED: 2 }, connectionsPending: 3, connectionsActive: 3 })
    expect(records.filter((r) => r.reason === 'PENDING_SHED').map((r) => r.conn)).toEqual([1, 2])
  })

  it('in the handshake: sheds the oldest unauthenticated connection, never an authenticated one', async () => {
    const echo = await startUpstream(pki, await pki.issue({ dns: ['b.mesh'] }))
    cleanup.push(() => echo.close())
    const silent = await silentUpstream()
    const s = spec([
      egressListener('good', '127.0.0.6', { host: '127.0.0.1', port: echo.port }, 'b.mesh'),
      egressListener('hang', '127.0.0.6', { host: '127.0.0.1', port: silent }, 'b.mesh'),
    ], { handshakeMs: 20_000 })
    const { dp } = dataPlane(s, 2)
    dp.setCredentials(pki.material(clientLeaf))
    await dp.start()
    // Two established (authenticated) connections on `good`: the listener is "full" of
    // connections, but none of them is pending.
    const good = dp.addresses().good!
    const established: Client[] = []
    for (const word of ['one', 'two']) {
      const c = connectClient(good.address, good.port)
      cleanup.push(() => c.socket.destroy())
      c.socket.write(word)
      await until(() => c.received().toString() === word)
      established.push(c)
    }
    expect(dp.stats().connectionsPending).toBe(0)
    // Four connections to `hang`, stuck in their upstream handshakes: the two oldest are shed.
    const hang = dp.addresses().hang!
    const stuck = await openIdle(hang.address, hang.port, 4, () => dp.stats().connectionsAccepted.hang ?? 0)
    await until(() => stuck.filter(isOpen).length === 2)
    expect(stuck.map(isOpen)).toEqual([false, false, true, true])
    expect(dp.stats()).toMatchObject({ failures: { PENDING_SHED: 2 }, connectionsPending: 2 })
    // A third authenticated connection on `good` still goes through, and the first two still work.
    const third = connectClient(good.address, good.port)
    cleanup.push(() => third.socket.destroy())
    third.socket.write('three')
    await until(() => third.received().toString() === 'three')
    for (const c of established) {
      c.socket.write('!')
      await until(() => c.received().toString().endsWith('!'))
    }
    expect(dp.stats().failures).toEqual({ PENDING_SHED: 2 })
  })
})
