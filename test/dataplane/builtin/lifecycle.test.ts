import net from 'node:net'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Port } from '../../../src/config/types.js'
import { BuiltinDataPlane } from '../../../src/dataplane/builtin/dataplane.js'
import type { DataPlaneSpec } from '../../../src/dataplane/spec.js'
import { sharedTestPki, type TestLeaf, type TestPki } from '../../fixtures/pki.js'
import { rejected, thrown } from '../../support.js'
import { connectClient, egressListener, itAsRoot, privileges, spec, startUpstream, testLogger, until, type Upstream } from '../harness.js'

let pki: TestPki
let clientLeaf: TestLeaf
let u: Upstream

beforeAll(async () => {
  pki = await sharedTestPki()
  clientLeaf = await pki.issue({ dns: ['a.mesh'] })
  u = await startUpstream(pki, await pki.issue({ dns: ['b.mesh'] }))
  return () => u.close()
})

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

function make(s: DataPlaneSpec) {
  const { log, records } = testLogger()
  const states: string[] = []
  const dp = new BuiltinDataPlane(s, { log, ...privileges })
  dp.onStateChange((a, b) => states.push(`${a}->${b}`))
  cleanup.push(() => dp.destroy())
  return { dp, records, states }
}

function egressSpec(timeouts: Partial<DataPlaneSpec['timeouts']> = {}): DataPlaneSpec {
  return spec([egressListener('b', '127.0.0.6', { host: '127.0.0.1', port: u.port }, 'b.mesh')], timeouts)
}

async function freePort(host: string): Promise<number> {
  const probe = net.createServer()
  await new Promise<void>((r) => probe.listen(0, host, r))
  const port = (probe.address() as net.AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))
  return port
}

function connectRefused(address: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect(port, address)
    s.on('connect', () => {
      s.destroy()
      resolve(undefined)
    })
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code))
  })
}

describe('start', () => {
  it('binds every listener or none, naming the one that failed', async () => {
    const host = '127.0.0.7'
    const firstPort = await freePort(host)
    const occupied = net.createServer()
    await new Promise<void>((r) => occupied.listen(0, host, r))
    cleanup.push(() => new Promise<void>((r) => occupied.close(() => r())))
    const busyPort = (occupied.address() as net.AddressInfo).port
    const first = { ...egressListener('first', host, { host: '127.0.0.1', port: u.port }, 'b.mesh'), port: firstPort as Port }
    const second = { ...egressListener('second', host, { host: '127.0.0.1', port: u.port }, 'b.mesh'), port: busyPort as Port }
    const { dp, states } = make(spec([first, second]))
    const err = await rejected(dp.start())
    expect(err).toMatchObject({ code: 'DATAPLANE_BIND', details: { listener: 'second', address: host, port: busyPort, errno: 'EADDRINUSE' } })
    expect(dp.state).toBe('created')
    expect(states).toEqual([])
    // The first listener was released again.
    const again = net.createServer()
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject)
      again.listen(firstPort, host, () => resolve())
    })
    await new Promise<void>((r) => again.close(() => r()))
  })

  it('goes straight to serving when credentials came first, and reports each state change once, in order', async () => {
    const { dp, states, records } = make(egressSpec())
    dp.setCredentials(pki.material(clientLeaf))
    expect(dp.state).toBe('created')
    await dp.start()
    expect(dp.state).toBe('serving')
    await dp.close()
    await Promise.resolve()
    expect(states).toEqual(['created->listening', 'listening->serving', 'serving->draining', 'draining->closed'])
    expect(records.filter((r) => typeof r.from === 'string').map((r) => r.msg)).toEqual([
      'created -> listening',
      'listening -> serving',
      'serving -> draining',
      'draining -> closed',
    ])
  })

  it('refuses a second start and a start after close', async () => {
    const { dp } = make(egressSpec())
    const first = dp.start()
    expect(await rejected(dp.start())).toMatchObject({ code: 'DATAPLANE_STATE', details: { op: 'start', state: 'created' } })
    await first
    await dp.close()
    expect(await rejected(dp.start())).toMatchObject({ code: 'DATAPLANE_STATE', details: { op: 'start', state: 'closed' } })
  })

  it('rejects duplicate listener names', () => {
    const l = egressListener('dup', '127.0.0.6', { host: '127.0.0.1', port: u.port }, 'b.mesh')
    const { log } = testLogger()
    expect(thrown(() => new BuiltinDataPlane(spec([l, { ...l, address: '127.0.0.8' }]), { log }))).toMatchObject({
      code: 'DATAPLANE_SPEC',
      details: { listener: 'dup' },
    })
  })

  itAsRoot('binds a transparent ingress listener dual-stack and refuses connections addressed to a mesh port (loop)', async () => {
    const { dp, records } = make(
      spec([{ kind: 'ingress', name: 'ingress', port: 0 as Port, requireClientCert: true, loopGuardPorts: [15006 as Port] }]),
    )
    dp.setCredentials(pki.material(clientLeaf))
    await dp.start()
    const { address, port } = dp.addresses().ingress!
    expect(address).toBe('::')
    for (const host of ['127.0.0.1', '::1']) {
      const c = connectClient(host, port)
      await c.closed
      expect(c.received().length).toBe(0)
    }
    expect(dp.stats().failures).toEqual({ LOOP: 2 })
    expect(records.find((r) => r.reason === 'LOOP')).toMatchObject({ listener: 'ingress', destination: { port } })
  })
})

describe('credentials', () => {
  it('rejects unusable material with a typed error and keeps the state', async () => {
    const { dp } = make(egressSpec())
    await dp.start()
    const other = await pki.issue({ dns: ['x.mesh'] })
    const good = pki.material(clientLeaf)
    expect(thrown(() => dp.setCredentials({ ...good, certChain: 'garbage' }))).toMatchObject({
      code: 'DATAPLANE_CREDENTIALS',
      details: { field: 'certChain' },
    })
    expect(thrown(() => dp.setCredentials({ ...good, meshCa: '' }))).toMatchObject({ code: 'DATAPLANE_CREDENTIALS', details: { field: 'meshCa' } })
    expect(thrown(() => dp.setCredentials({ ...good, key: other.keyPem }))).toMatchObject({ code: 'DATAPLANE_CREDENTIALS' })
    expect(dp.state).toBe('listening')
  })

  it('refuses credentials after close', async () => {
    const { dp } = make(egressSpec())
    dp.destroy()
    expect(thrown(() => dp.setCredentials(pki.material(clientLeaf)))).toMatchObject({ code: 'DATAPLANE_STATE', details: { op: 'setCredentials', state: 'closed' } })
  })
})

describe('close and destroy', () => {
  it('close: inbound stops accepting, egress keeps serving, an established connection finishes, then closed', async () => {
    const ingress = { kind: 'ingress', name: 'ingress', port: 0 as Port, requireClientCert: true, loopGuardPorts: [] } as const
    const { dp } = make(spec([egressListener('b', '127.0.0.6', { host: '127.0.0.1', port: u.port }, 'b.mesh'), ingress], { drainMs: 5000 }))
    dp.setCredentials(pki.material(clientLeaf))
    await dp.start()
    const { address, port } = dp.addresses().b!
    const c = connectClient(address, port)
    c.socket.write('before')
    await until(() => c.received().toString() === 'before')
    const started = Date.now()
    const closing = dp.close()
    expect(dp.close()).toBe(closing)
    expect(dp.state).toBe('draining')
    expect(await connectRefused('127.0.0.1', dp.addresses().ingress!.port)).toBe('ECONNREFUSED')
    // The workload may still call out while it shuts down.
    const late = connectClient(address, port)
    late.socket.end('late')
    expect(await late.ended).toBe(true)
    expect(late.received().toString()).toBe('late')
    c.socket.end('-after')
    expect(await c.ended).toBe(true)
    expect(c.received().toString()).toBe('before-after')
    await closing
    expect(dp.state).toBe('closed')
    expect(Date.now() - started).toBeLessThan(4000)
    expect(dp.stats().connectionsActive).toBe(0)
    expect(await connectRefused(address, port)).toBe('ECONNREFUSED')
  })

  it('close before credentials: a held egress connection is kept through the drain and served when credentials arrive', async () => {
    const { dp } = make(egressSpec({ drainMs: 5000, certificateWaitMs: 5000 }))
    await dp.start()
    const { address, port } = dp.addresses().b!
    const c = connectClient(address, port)
    c.socket.write('held')
    await until(() => dp.stats().connectionsActive === 1)
    const closing = dp.close()
    expect(dp.state).toBe('draining')
    dp.setCredentials(pki.material(clientLeaf))
    await until(() => c.received().toString() === 'held')
    expect(u.peerCerts.at(-1)?.subjectAltName).toContain('a.mesh')
    c.socket.end()
    expect(await c.ended).toBe(true)
    await closing
    expect(dp.state).toBe('closed')
    expect(dp.stats().failures).toEqual({})
  })

  it('close destroys what is still open after drainMs', async () => {
    const { dp } = make(egressSpec({ drainMs: 200 }))
    dp.setCredentials(pki.material(clientLeaf))
    await dp.start()
    const c = connectClient(dp.addresses().b!.address, dp.addresses().b!.port)
    c.socket.write('idle')
    await until(() => c.received().length === 4)
    const started = Date.now()
    await dp.close()
    expect(Date.now() - started).toBeGreaterThanOrEqual(190)
    expect(dp.state).toBe('closed')
    await c.closed
    expect(dp.stats().connectionsActive).toBe(0)
  })

  it('close drops held connections without counting them as failures', async () => {
    const { dp } = make(egressSpec())
    await dp.start()
    const c = connectClient(dp.addresses().b!.address, dp.addresses().b!.port)
    await until(() => dp.stats().connectionsActive === 1)
    await dp.close()
    await c.closed
    expect(dp.stats().failures).toEqual({})
  })

  it('destroy is immediate and idempotent; close after destroy resolves', async () => {
    const { dp, states } = make(egressSpec({ drainMs: 5000 }))
    dp.setCredentials(pki.material(clientLeaf))
    await dp.start()
    const c = connectClient(dp.addresses().b!.address, dp.addresses().b!.port)
    c.socket.write('x')
    await until(() => c.received().length === 1)
    dp.destroy(new Error('test'))
    dp.destroy()
    expect(dp.state).toBe('closed')
    await c.closed
    await dp.close()
    await Promise.resolve()
    expect(states).toEqual(['created->listening', 'listening->serving', 'serving->closed'])
  })

  it('destroy during start leaves nothing bound', async () => {
    const host = '127.0.0.9'
    const port = await freePort(host)
    const { dp } = make(spec([{ ...egressListener('b', host, { host: '127.0.0.1', port: u.port }, 'b.mesh'), port: port as Port }]))
    const starting = dp.start()
    dp.destroy()
    expect(await rejected(starting)).toMatchObject({ code: 'DATAPLANE_STATE' })
    expect(await connectRefused(host, port)).toBe('ECONNREFUSED')
  })
})
