// Waiting, the one way: every wait takes a signal, settles once and leaves no timer or
// listener behind.

import { setTimeout as delay } from 'node:timers/promises'

// setTimeout fires at once for delays past 2^31-1 ms (~24.8 days).
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Resolves after `ms`, or as soon as `signal` aborts; never rejects. A delay longer than
 * a timer can hold wakes up early: callers that sleep until a date loop on it.
 */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return
  try {
    await delay(Math.max(0, Math.min(ms, MAX_TIMER_MS)), undefined, signal === undefined ? {} : { signal })
  } catch (err) {
    if (!signal?.aborted) throw err
  }
}

/** Whether `p` settled (either way) within `ms`; false when the time ran out first. Never rejects. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  const timeout = new AbortController()
  const timer = delay(ms, false, { signal: timeout.signal }).catch(() => false)
  try {
    return await Promise.race([p.then(() => true, () => true), timer])
  } finally {
    timeout.abort()
  }
}

/**
 * A step that ends exactly once: at its first settle(), or when `ms` runs out, which
 * then calls `onTimeout`. settle() answers whether this call was the one that ended it,
 * so of competing events (success, error, end, the timeout) only the first acts. It also
 * clears the timer, so a socket that is gone does not stay referenced until the timeout.
 */
export function settleOnce(ms: number, onTimeout: () => void): () => boolean {
  let settled = false
  const timer = setTimeout(() => {
    if (settled) return
    settled = true
    onTimeout()
  }, Math.max(0, Math.min(ms, MAX_TIMER_MS)))
  return () => {
    if (settled) return false
    settled = true
    clearTimeout(timer)
    return true
  }
}
