import { getEventListeners } from 'node:events'
import { describe, expect, it, vi } from 'vitest'
import { settleOnce, sleep, within } from '../src/timers.js'

describe('sleep', () => {
  it('resolves on abort without rejecting, and leaves no listener on the signal', async () => {
    const signal = new AbortController()
    const slept = sleep(60_000, signal.signal)
    expect(getEventListeners(signal.signal, 'abort')).toHaveLength(1)
    signal.abort()
    await expect(slept).resolves.toBeUndefined()
    expect(getEventListeners(signal.signal, 'abort')).toHaveLength(0)
  })
  it('returns at once on an aborted signal, and removes its listener after the time', async () => {
    await expect(sleep(60_000, AbortSignal.abort())).resolves.toBeUndefined()
    const signal = new AbortController().signal
    await sleep(1, signal)
    expect(getEventListeners(signal, 'abort')).toHaveLength(0)
  })
})

describe('within', () => {
  it('true when the promise settles first, either way; false when the time runs out', async () => {
    expect(await within(Promise.resolve(), 60_000)).toBe(true)
    expect(await within(Promise.reject(new Error('x')), 60_000)).toBe(true)
    expect(await within(new Promise(() => {}), 1)).toBe(false)
  })
})

describe('settleOnce', () => {
  it('the first settle() wins, and the timeout does not run after it', () => {
    vi.useFakeTimers()
    try {
      let timedOut = 0
      const settle = settleOnce(100, () => timedOut++)
      expect(settle()).toBe(true)
      expect(settle()).toBe(false)
      vi.advanceTimersByTime(1_000)
      expect(timedOut).toBe(0)
      expect(vi.getTimerCount()).toBe(0)
    } finally {
      vi.useRealTimers()
    }
  })
  it('the timeout runs once when nothing settled first; later settle() calls lose', () => {
    vi.useFakeTimers()
    try {
      let timedOut = 0
      const settle = settleOnce(100, () => timedOut++)
      vi.advanceTimersByTime(99)
      expect(timedOut).toBe(0)
      vi.advanceTimersByTime(1)
      expect(timedOut).toBe(1)
      expect(settle()).toBe(false)
      vi.advanceTimersByTime(1_000)
      expect(timedOut).toBe(1)
    } finally {
      vi.useRealTimers()
    }
  })
})
