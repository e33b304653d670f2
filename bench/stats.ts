// Statistics for the benchmark: percentiles of latency samples, medians over
// repetitions, and ratios that stay undefined instead of dividing by zero.

/**
 * The p-th percentile (0 < p <= 100) of `sorted` (ascending) by nearest rank: the
 * smallest sample such that at least p % of the samples are <= it. Undefined for no
 * samples, so an empty run never reports a latency of 0.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number | undefined {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile ${p} is outside (0, 100]`)
  const n = sorted.length
  if (n === 0) return undefined
  const rank = Math.ceil((p / 100) * n)
  return sorted[Math.min(n, Math.max(1, rank)) - 1]
}

/** p50/p90/p99 and the sample count of unsorted samples (the array is not modified). */
export function summarize(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples as ArrayLike<number>).sort()
  return {
    count: sorted.length,
    p50: percentileSorted(sorted, 50),
    p90: percentileSorted(sorted, 90),
    p99: percentileSorted(sorted, 99),
  }
}

export interface LatencySummary {
  readonly count: number
  readonly p50: number | undefined
  readonly p90: number | undefined
  readonly p99: number | undefined
}

/** Median of the defined values (mean of the middle two for an even count); undefined if none. */
export function median(values: readonly (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return undefined
  const mid = v.length >> 1
  return v.length % 2 === 1 ? v[mid] : ((v[mid - 1] as number) + (v[mid] as number)) / 2
}

/** a / b, undefined when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return undefined
  return a / b
}

/** a - b, undefined when either is missing. */
export function difference(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined) return undefined
  return a - b
}

/** CPU seconds per unit of work (per GB, per 1000 requests); undefined without work. */
export function cpuPer(cpuSeconds: number | undefined, units: number | undefined): number | undefined {
  return ratio(cpuSeconds, units)
}
