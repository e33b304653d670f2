// The lifecycle both data planes share (src/dataplane/lifecycle.ts), driven through a
// recording implementation: which hook runs when, and what callers may do in each state.

import { describe, expect, it } from 'vitest'
import type { DataPlaneStats } from '../../src/dataplane/dataplane.js'
import { DataPlaneBase } from '../../src/dataplane/lifecycle.js'
import type { TlsMaterial } from '../../src/pki/index.js'
import { sharedTestPki } from '../fixtures/pki.js'
import { rejected, thrown } from '../support.js'
import { spec, testLogger } from './harness.js'

class Recording extends DataPlaneBase {
  readonly calls: string[] = []
  openGate: Promise<void> = Promise.resolve()
  openError: Error | undefined
  drainGate: Promise<void> = Promise.resolve()
  drainMs: number | undefined
  serveError: Error | undefined

  get live(): boolean {
    return this.state === 'serving'
  }
  stats(): DataPlaneStats {
    return { connectionsAccepted: {}, connectionsActive: 0, handshakesCompleted: {}, failures: {}, bytesIn: 0, bytesOut: 0 }
  }
  protected async open(): Promise<void> {
    this.calls.push('open')
    await this.openGate
    if (this.openError !== undefined) throw this.openError
  }
  protected installCredentials(_m: TlsMaterial): void {
    this.calls.push(`credentials in ${this.state}`)
  }
  protected serve(): void {
    this.calls.push('serve')
    if (this.serveError !== undefined) throw this.serveError
  }
  protected async drain(drainMs: number): Promise<void> {
    this.calls.push('drain')
    this.drainMs = drainMs
    await this.drainGate
  }
  protected teardown(): void {
    this.calls.push('teardown')
  }
}

async function setup() {
  const pki = await sharedTestPki()
  const material = pki.material(await pki.issue({ dns: ['a.mesh'] }))
  const { log, records } = testLogger()
  const dp = new Recording(spec([], { drainMs: 1234 }), log, 'builtin')
  const states: string[] = []
  dp.onStateChange((a, b) => states.push(`${a}->${b}`))
  return { dp, material, records, states }
}

describe('DataPlaneBase', () => {
  it('start, credentials, close: each hook once, in order; observers after the call, in order', async () => {
    const { dp, material, states, records } = await setup()
    await dp.start()
    expect(dp.state).toBe('listening')
    dp.setCredentials(material)
    expect(states).toEqual(['created->listening']) // the second change is reported after this call
    await Promise.resolve()
    await dp.close()
    await Promise.resolve()
    expect(dp.calls).toEqual(['open', 'credentials in listening', 'serve', 'drain', 'teardown'])
    expect(dp.drainMs).toBe(1234)
    expect(states).toEqual(['created->listening', 'listening->serving', 'serving->draining', 'draining->closed'])
    expect(records.filter((r) => r['component'] === 'dataplane' && r['impl'] === 'builtin' && typeof r['from'] === 'string')).toHaveLength(4)
  })

  it('credentials before start(): installed in created, served as start() completes', async () => {
    const { dp, material, states } = await setup()
    dp.setCredentials(material)
    expect(dp.state).toBe('created')
    await dp.start()
    expect(dp.state).toBe('serving')
    await Promise.resolve()
    expect(dp.calls).toEqual(['credentials in created', 'open', 'serve'])
    expect(states).toEqual(['created->listening', 'listening->serving'])
  })

  it('refused material changes nothing and reaches no hook', async () => {
    const { dp, material } = await setup()
    await dp.start()
    expect(thrown(() => dp.setCredentials({ ...material, certChain: 'garbage' }))).toMatchObject({
      code: 'DATAPLANE_CREDENTIALS',
      details: { field: 'certChain' },
    })
    expect(dp.state).toBe('listening')
    expect(dp.calls).toEqual(['open'])
  })

  it('a failed open() leaves created, and start() may be tried again', async () => {
    const { dp, states } = await setup()
    dp.openError = new Error('bind failed')
    expect((await rejected(dp.start())).message).toBe('bind failed')
    expect(dp.state).toBe('created')
    dp.openError = undefined
    await dp.start()
    expect(dp.state).toBe('listening')
    await Promise.resolve()
    expect(states).toEqual(['created->listening'])
  })

  it('a serve() that throws leaves no half-served state: closed, torn down, reported, and the caller gets the error', async () => {
    const { dp, material, states } = await setup()
    dp.serveError = new Error('cannot serve')
    dp.setCredentials(material)
    expect((await rejected(dp.start())).message).toBe('cannot serve')
    expect(dp.state).toBe('closed')
    await Promise.resolve()
    expect(dp.calls).toEqual(['credentials in created', 'open', 'serve', 'teardown'])
    expect(states).toEqual(['created->listening', 'listening->serving', 'serving->closed'])

    const late = await setup()
    late.dp.serveError = new Error('cannot serve')
    await late.dp.start()
    expect(thrown(() => late.dp.setCredentials(late.material)).message).toBe('cannot serve')
    expect(late.dp.state).toBe('closed')
    expect(late.dp.calls).toEqual(['open', 'credentials in listening', 'serve', 'teardown'])
  })

  it('refuses a second start(), and start() or credentials after close, with one error shape', async () => {
    const { dp, material } = await setup()
    let open!: () => void
    dp.openGate = new Promise((r) => (open = r))
    const first = dp.start()
    expect(await rejected(dp.start())).toMatchObject({ code: 'DATAPLANE_STATE', details: { op: 'start', state: 'created' } })
    open()
    await first
    await dp.close()
    expect(await rejected(dp.start())).toMatchObject({ code: 'DATAPLANE_STATE', details: { op: 'start', state: 'closed' } })
    expect(thrown(() => dp.setCredentials(material))).toMatchObject({ code: 'DATAPLANE_STATE', details: { op: 'setCredentials', state: 'closed' } })
  })

  it('close() or destroy() while open() runs: start() rejects and what open() took is torn down', async () => {
    const { dp } = await setup()
    let open!: () => void
    dp.openGate = new Promise((r) => (open = r))
    const starting = dp.start()
    dp.destroy()
    open()
    expect(await rejected(starting)).toMatchObject({ code: 'DATAPLANE_STATE', details: { op: 'start', state: 'closed' } })
    expect(dp.calls).toEqual(['open', 'teardown', 'teardown'])
  })

  it('close() is one promise; destroy() during the drain closes at once; both idempotent', async () => {
    const { dp, material, states } = await setup()
    dp.setCredentials(material)
    await dp.start()
    let drained!: () => void
    dp.drainGate = new Promise((r) => (drained = r))
    const closing = dp.close()
    expect(dp.close()).toBe(closing)
    expect(dp.state).toBe('draining')
    dp.destroy(new Error('enough'))
    dp.destroy()
    expect(dp.state).toBe('closed')
    drained()
    await closing
    await dp.close()
    await Promise.resolve()
    expect(dp.calls.filter((c) => c === 'teardown')).toHaveLength(1)
    expect(states).toEqual(['created->listening', 'listening->serving', 'serving->draining', 'draining->closed'])
  })

  it('credentials during the drain still reach the implementation (egress serves to the end)', async () => {
    const { dp, material } = await setup()
    dp.setCredentials(material)
    await dp.start()
    let drained!: () => void
    dp.drainGate = new Promise((r) => (drained = r))
    const closing = dp.close()
    dp.setCredentials(material)
    expect(dp.calls.at(-1)).toBe('credentials in draining')
    expect(dp.state).toBe('draining')
    drained()
    await closing
  })

  it('whenLive(): resolves once live, rejects when closed first or on abort', async () => {
    const { dp, material } = await setup()
    await dp.start()
    const live = dp.whenLive()
    dp.setCredentials(material)
    await live
    const other = (await setup()).dp
    await other.start()
    const ac = new AbortController()
    const aborted = other.whenLive(ac.signal)
    ac.abort(new Error('stop waiting'))
    expect((await rejected(aborted)).message).toBe('stop waiting')
    const closed = other.whenLive()
    await other.close()
    expect(await rejected(closed)).toMatchObject({ code: 'DATAPLANE_STATE', details: { state: 'closed' } })
  })
})
