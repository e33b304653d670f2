// Shared test helpers. Nothing here asserts: it only gives tests what they need to assert on.

import type { Clock } from '../src/log-limit.js'

/** Runs fn and returns what it threw; fails the test if it did not throw. */
export function thrown(fn: () => unknown): any {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected the call to throw, it returned')
}

/** Like `thrown`, for promises. */
export async function rejected(p: Promise<unknown>): Promise<any> {
  try {
    await p
  } catch (err) {
    return err
  }
  throw new Error('expected the promise to reject, it resolved')
}

/** A pino destination that keeps parsed NDJSON records for assertions. */
export function logSink(): { records: Record<string, unknown>[]; write(line: string): void } {
  const records: Record<string, unknown>[] = []
  return {
    records,
    write(line: string) {
      for (const l of line.split('\n')) if (l.trim() !== '') records.push(JSON.parse(l))
    },
  }
}

/** A clock that moves only when told to, running due timers in order. */
export function manualClock(): Clock & { advance(ms: number): void; pending(): number } {
  let now = 0
  let timers: { at: number; fn: () => void }[] = []
  return {
    now: () => now,
    schedule(fn, ms) {
      const t = { at: now + ms, fn }
      timers.push(t)
      return () => {
        timers = timers.filter((x) => x !== t)
      }
    },
    advance(ms) {
      const until = now + ms
      for (;;) {
        const due = timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0]
        if (due === undefined) break
        timers = timers.filter((t) => t !== due)
        now = due.at
        due.fn()
      }
      now = until
    },
    pending: () => timers.length,
  }
}
