import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { Renewal, renewWait, retryDelay, type Held } from '../../src/agent/renewal.js'
import { MeshApiError } from '../../src/meshapi/index.js'
import { logSink } from '../support.js'

const held = (notBefore: number, lifetimeMs: number, renewAfterMs: number): Held => ({
  serial: `S${notBefore}`,
  notBefore: new Date(notBefore),
  notAfter: new Date(notBefore + lifetimeMs),
  renewAt: new Date(notBefore + renewAfterMs),
})

describe('renewal policy', () => {
  it('holds until the renewal time, never less than a tenth of a short lifetime', () => {
    expect(renewWait(held(0, 90_000, 60_000), 10_000)).toBe(50_000)
    expect(renewWait(held(0, 5_000, 100), 4_000)).toBe(500)
  })
  it('backs off exponentially with jitter up to the maximum, and not past a quarter of what is left', () => {
    const o = { retryInitialMs: 1_000, retryMaxMs: 30_000, random: () => 1 }
    expect([0, 1, 2, 5, 30].map((n) => retryDelay(n, undefined, 0, o))).toEqual([1_000, 2_000, 4_000, 30_000, 30_000])
    expect(retryDelay(0, undefined, 0, { ...o, random: () => 0 })).toBe(500)
    expect(retryDelay(5, held(0, 40_000, 20_000), 0, o)).toBe(10_000)
  })
})

describe('Renewal', () => {
  it('obtaining -> retrying -> obtaining -> holding -> stopped, reporting each failure', async () => {
    const sink = logSink()
    const log = pino({ level: 'trace' }, sink)
    const failures: [string, boolean][] = []
    let calls = 0
    const abort = new AbortController()
    const r = new Renewal({
      log,
      retryInitialMs: 1,
      retryMaxMs: 1,
      onFailure: (f, holding) => failures.push([f.code, holding]),
      obtain: async () => {
        calls++
        if (calls === 1) throw new MeshApiError('COORDINATOR_UNREACHABLE', 'down')
        queueMicrotask(() => abort.abort())
        return held(Date.now(), 3_600_000, 2_400_000)
      },
    })
    expect(r.state).toBe('idle')
    await r.run(abort.signal)
    expect(r.state).toBe('stopped')
    expect(r.failures).toBe(1)
    expect(failures).toEqual([['COORDINATOR_UNREACHABLE', false]])
    const transitions = sink.records.map((x) => x['msg']).filter((m) => String(m).startsWith('renewal '))
    expect(transitions).toEqual([
      'renewal idle -> obtaining',
      'renewal obtaining -> retrying',
      'renewal retrying -> obtaining',
      'renewal obtaining -> holding',
      'renewal holding -> stopped',
    ])
  })
})
