// Durations on the command line: `24h`, `90s`, `1500ms`, `2m`, or plain milliseconds.
// Each command wraps a refusal in its own error (it names the flag).

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const

/** Whole milliseconds, or undefined when `text` is not a duration of at least 1 ms. */
export function durationMs(text: string): number | undefined {
  const m = DURATION_RE.exec(text.trim())
  const value = m === null ? NaN : Number(m[1]) * UNIT_MS[(m[2] ?? 'ms') as keyof typeof UNIT_MS]
  return Number.isFinite(value) && value >= 1 ? Math.round(value) : undefined
}
