import { describe, expect, it } from 'vitest'
import { summarize as summarizeRuns, renderMarkdown, type ConfigRun } from '../../bench/report.js'
import { cpuPer, difference, median, percentileSorted, ratio, summarize } from '../../bench/stats.js'

describe('percentiles', () => {
  it('uses the nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1)
    expect(percentileSorted(xs, 50)).toBe(50)
    expect(percentileSorted(xs, 90)).toBe(90)
    expect(percentileSorted(xs, 99)).toBe(99)
    expect(percentileSorted(xs, 100)).toBe(100)
    expect(percentileSorted([7], 1)).toBe(7)
    expect(percentileSorted([1, 2, 3], 50)).toBe(2)
    expect(percentileSorted([1, 2, 3, 4], 50)).toBe(2)
  })

  it('is undefined without samples and refuses a percentile outside (0, 100]', () => {
    expect(percentileSorted([], 50)).toBeUndefined()
    expect(() => percentileSorted([1], 0)).toThrow(RangeError)
    expect(() => percentileSorted([1], 101)).toThrow(RangeError)
  })

  it('summarize sorts numerically without touching its input', () => {
    const input = [100, 9, 20, 3, 1000]
    expect(summarize(input)).toEqual({ count: 5, p50: 20, p90: 1000, p99: 1000 })
    expect(input).toEqual([100, 9, 20, 3, 1000])
    expect(summarize([])).toEqual({ count: 0, p50: undefined, p90: undefined, p99: undefined })
  })
})

describe('medians and ratios', () => {
  it('median of odd and even counts, ignoring missing values', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([undefined, 5, Number.NaN])).toBe(5)
    expect(median([])).toBeUndefined()
  })

  it('ratio and difference stay undefined instead of inventing numbers', () => {
    expect(ratio(3, 4)).toBe(0.75)
    expect(ratio(3, 0)).toBeUndefined()
    expect(ratio(undefined, 4)).toBeUndefined()
    expect(difference(10, 4)).toBe(6)
    expect(difference(10, undefined)).toBeUndefined()
    expect(cpuPer(0.5, 2)).toBe(0.25)
    expect(cpuPer(0.5, 0)).toBeUndefined()
  })
})

describe('report', () => {
  const rep = (p50: number, rps: number, cpu?: number) => ({
    rr1000: { p50, p90: p50 * 2, p99: p50 * 4, units: 1000, seconds: 1, errors: 0, ...(cpu !== undefined ? { cpuSeconds: cpu } : {}) },
    rrmax: { p50, units: rps, seconds: 1, errors: 0 },
  })
  const runs: ConfigRun[] = [
    { config: 'plaintext', reps: [rep(20, 10_000), rep(30, 12_000), rep(25, 11_000)], rssIdle: [[], [], []] },
    { config: 'builtin', reps: [rep(120, 5_000, 0.2), rep(140, 6_000, 0.3), rep(200, 4_000, 0.25)], rssIdle: [[40 * 2 ** 20, 30 * 2 ** 20]] },
    { config: 'haproxy', reps: [rep(70, 8_000, 0.1), rep(80, 8_000, 0.1), rep(75, 8_000, 0.1)], rssIdle: [[20 * 2 ** 20]] },
    { config: 'envoy', skipped: 'no envoy binary', reps: [], rssIdle: [] },
  ]

  it('added latency is the median of per-repetition differences to plaintext', () => {
    const s = summarizeRuns(runs)
    // builtin minus plaintext per repetition: 100, 110, 175 → 110
    expect(s['builtin']?.['rr1000.addedp50Us']?.value).toBe(110)
    expect(s['haproxy']?.['rr1000.addedp50Us']?.value).toBe(50)
    expect(s['plaintext']?.['rr1000.addedp50Us']?.value).toBeUndefined()
  })

  it('throughput ratios are against plaintext and HAProxy medians; CPU is per 1000 requests', () => {
    const s = summarizeRuns(runs)
    expect(s['builtin']?.['rrmax.rps']).toEqual({ value: 5_000, vsPlain: 5_000 / 11_000, vsHaproxy: 5_000 / 8_000 })
    expect(s['builtin']?.['rr1000.cpuSecPer1000Req']?.value).toBeCloseTo(0.25)
    expect(s['builtin']?.['rss.idleMB']?.value).toBe(40)
    expect(s['envoy']).toBeUndefined()
  })

  it('the table names skipped configurations and the setup', () => {
    const setup = {
      node: '20.0.0',
      kernel: '6.1',
      cores: 2,
      cpu: 'cpu',
      openssl: '3.0',
      repetitions: 3,
      secondsPerRun: 1,
      cpsConcurrency: 8,
      date: '2026-01-01',
    }
    const md = renderMarkdown(summarizeRuns(runs), runs, setup, { readyMs: [300, 100, 200], rssFresh: [2 ** 20] })
    expect(md).toContain('2 cores')
    expect(md).toContain('envoy: skipped (no envoy binary)')
    expect(md).toMatch(/\| builtin \| 140 \| 280 \| 560 \| 110 \|/)
    expect(md).toContain('median 200 ms')
  })
})
