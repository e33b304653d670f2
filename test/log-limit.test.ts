import { describe, expect, it } from 'vitest'
import { LogLimiter } from '../src/log-limit.js'
import { manualClock } from './support.js'

function limiter(burst = 3, intervalMs = 1000) {
  const clock = manualClock()
  const summaries: [string, number, number][] = []
  const l = new LogLimiter((key, n, ms) => summaries.push([key, n, ms]), { burst, intervalMs }, clock)
  return { l, clock, summaries }
}

const allowed = (l: LogLimiter, key: string, n: number): boolean[] => Array.from({ length: n }, () => l.allow(key))

describe('LogLimiter', () => {
  it('lets the first `burst` lines of an interval through, then one summary with the suppressed count at its end', () => {
    const { l, clock, summaries } = limiter()
    expect(allowed(l, 'LOOP', 10)).toEqual([true, true, true, false, false, false, false, false, false, false])
    expect(summaries).toEqual([])
    clock.advance(999)
    expect(summaries).toEqual([])
    clock.advance(1)
    expect(summaries).toEqual([['LOOP', 7, 1000]])
    // A new interval starts with a fresh burst.
    expect(allowed(l, 'LOOP', 4)).toEqual([true, true, true, false])
    clock.advance(1000)
    expect(summaries).toEqual([
      ['LOOP', 7, 1000],
      ['LOOP', 1, 1000],
    ])
  })

  it('limits each key on its own', () => {
    const { l, clock, summaries } = limiter(1)
    expect(allowed(l, 'A', 3)).toEqual([true, false, false])
    expect(allowed(l, 'B', 2)).toEqual([true, false])
    clock.advance(1000)
    expect(summaries).toEqual([
      ['A', 2, 1000],
      ['B', 1, 1000],
    ])
  })

  it('writes no summary and keeps no timer when nothing was suppressed', () => {
    const { l, clock, summaries } = limiter()
    expect(allowed(l, 'A', 3)).toEqual([true, true, true])
    expect(clock.pending()).toBe(0)
    clock.advance(5000)
    expect(summaries).toEqual([])
  })

  it('an interval that ended without its timer (a clock jump) is summarized before the next one starts', () => {
    const clock = manualClock()
    const summaries: [string, number, number][] = []
    // A scheduler that never fires: only the next allow() notices the interval is over.
    const l = new LogLimiter((k, n, ms) => summaries.push([k, n, ms]), { burst: 1, intervalMs: 1000 }, { now: clock.now, schedule: () => () => {} })
    expect(allowed(l, 'A', 3)).toEqual([true, false, false])
    clock.advance(1500)
    expect(l.allow('A')).toBe(true)
    expect(summaries).toEqual([['A', 2, 1000]])
  })

  it('flush writes the pending summaries at once and cancels their timers', () => {
    const { l, clock, summaries } = limiter(0)
    expect(allowed(l, 'A', 2)).toEqual([false, false])
    l.flush()
    expect(summaries).toEqual([['A', 2, 1000]])
    expect(clock.pending()).toBe(0)
    clock.advance(2000)
    expect(summaries).toHaveLength(1)
  })

  it('rejects a negative burst or a zero interval', () => {
    expect(() => new LogLimiter(() => {}, { burst: -1, intervalMs: 1 })).toThrow(RangeError)
    expect(() => new LogLimiter(() => {}, { burst: 1, intervalMs: 0 })).toThrow(RangeError)
  })
})
