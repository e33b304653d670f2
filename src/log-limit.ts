// Rate limiting for log lines an outsider can cause: the data plane's per-connection
// failures, the coordinator's refused calls. A flood of refusals must not turn into a
// flood of log lines (disk, CPU, and the lines that matter scrolled away): per key (the
// failure reason or error code), the first `burst` lines of an interval are written,
// the rest are counted, and when the interval ends one summary line says how many were
// left out. Counters (metrics) still count every one.

export interface LogLimitOptions {
  /** Lines written per key and interval before suppression starts. */
  readonly burst: number
  readonly intervalMs: number
}

export const DEFAULT_LOG_LIMIT: LogLimitOptions = { burst: 20, intervalMs: 10_000 }

/** Time and timers, injectable for tests. */
export interface Clock {
  now(): number
  /** Runs fn once after ms; returns a cancel function. */
  schedule(fn: () => void, ms: number): () => void
}

export const systemClock: Clock = {
  now: () => performance.now(),
  schedule(fn, ms) {
    const t = setTimeout(fn, ms)
    // A pending summary must not keep the process alive.
    t.unref()
    return () => clearTimeout(t)
  },
}

/** Called once per interval and key in which lines were suppressed. */
export type SummaryFn = (key: string, suppressed: number, intervalMs: number) => void

interface Window {
  readonly start: number
  logged: number
  suppressed: number
  cancel: (() => void) | undefined
}

export class LogLimiter {
  readonly #opts: LogLimitOptions
  readonly #clock: Clock
  readonly #summary: SummaryFn
  readonly #windows = new Map<string, Window>()

  constructor(summary: SummaryFn, opts: LogLimitOptions = DEFAULT_LOG_LIMIT, clock: Clock = systemClock) {
    if (!Number.isSafeInteger(opts.burst) || opts.burst < 0 || !(opts.intervalMs > 0)) {
      throw new RangeError(`log limit: burst must be an integer >= 0 and intervalMs > 0, got ${opts.burst} / ${opts.intervalMs}`)
    }
    this.#opts = opts
    this.#clock = clock
    this.#summary = summary
  }

  /** Whether a line for `key` may be written now; if not, it is counted for the summary. */
  allow(key: string): boolean {
    const now = this.#clock.now()
    let w = this.#windows.get(key)
    if (w !== undefined && now - w.start >= this.#opts.intervalMs) {
      // The interval is over (its summary timer has not run yet): close it first.
      this.#end(key, w)
      w = undefined
    }
    if (w === undefined) {
      w = { start: now, logged: 0, suppressed: 0, cancel: undefined }
      this.#windows.set(key, w)
    }
    if (w.logged < this.#opts.burst) {
      w.logged++
      return true
    }
    w.suppressed++
    if (w.cancel === undefined) {
      const window = w
      w.cancel = this.#clock.schedule(() => this.#end(key, window), Math.max(0, w.start + this.#opts.intervalMs - now))
    }
    return false
  }

  /** Writes the pending summaries now and cancels their timers. */
  flush(): void {
    for (const [key, w] of [...this.#windows]) this.#end(key, w)
  }

  #end(key: string, w: Window): void {
    w.cancel?.()
    w.cancel = undefined
    if (this.#windows.get(key) === w) this.#windows.delete(key)
    if (w.suppressed > 0) {
      const n = w.suppressed
      w.suppressed = 0
      this.#summary(key, n, this.#opts.intervalMs)
    }
  }
}
