// Turns the per-repetition measurements into medians, ratios and the Markdown table.
// Pure: no I/O, so the table is a function of the JSON next to it.

import { cpuPer, difference, median, ratio } from './stats.js'

export const WORKLOADS = ['rr1000', 'rrmax', 'bulk1', 'bulk8', 'cps', 'cpsFull'] as const
export type Workload = (typeof WORKLOADS)[number]

/** One workload run of one configuration in one repetition. */
export interface Sample {
  readonly p50?: number
  readonly p90?: number
  readonly p99?: number
  /** Requests, connections or bytes in the measured window. */
  readonly units: number
  readonly seconds: number
  /** CPU seconds of the configuration's proxy processes over the run. */
  readonly cpuSeconds?: number
  /** Peak RSS of the proxy processes, in bytes, one entry per process. */
  readonly rssPeak?: readonly number[]
  readonly errors: number
}

export interface ConfigRun {
  readonly config: string
  readonly skipped?: string
  /** repetition → workload → sample */
  readonly reps: readonly Partial<Record<Workload, Sample>>[]
  /** Idle RSS per process (bytes), at the start of each repetition. */
  readonly rssIdle: readonly (readonly number[])[]
}

export interface Setup {
  readonly node: string
  readonly kernel: string
  readonly cores: number
  readonly cpu: string
  readonly openssl: string
  readonly haproxy?: string
  readonly stunnel?: string
  readonly repetitions: number
  readonly secondsPerRun: number
  readonly cpsConcurrency: number
  readonly date: string
}

export interface Startup {
  /** `podvm-mesh run` spawn → "ready" log line, ms, per repetition. */
  readonly readyMs: readonly number[]
  /** RSS of that fresh daemon right after ready, bytes. */
  readonly rssFresh: readonly number[]
}

export interface MetricSummary {
  readonly value?: number
  readonly vsPlain?: number
  readonly vsHaproxy?: number
}

export type Summary = Record<string, Record<string, MetricSummary>>

const PLAIN = 'plaintext'
const HAPROXY = 'haproxy'

function perRep(run: ConfigRun, w: Workload, f: (s: Sample) => number | undefined): (number | undefined)[] {
  return run.reps.map((r) => {
    const s = r[w]
    return s === undefined ? undefined : f(s)
  })
}

/** Added latency per repetition (config minus plaintext of the same repetition), then the median. */
function added(run: ConfigRun, plain: ConfigRun | undefined, w: Workload, key: 'p50' | 'p90' | 'p99'): number | undefined {
  if (plain === undefined) return undefined
  return median(run.reps.map((r, i) => difference(r[w]?.[key], plain.reps[i]?.[w]?.[key])))
}

const rate = (s: Sample): number => s.units / s.seconds
const maxOf = (xs: readonly number[] | undefined): number | undefined => (xs === undefined || xs.length === 0 ? undefined : Math.max(...xs))

/** Medians for every configuration: the JSON summary and the source of the table. */
export function summarize(runs: readonly ConfigRun[]): Summary {
  const byName = new Map(runs.map((r) => [r.config, r]))
  const plain = byName.get(PLAIN)
  const out: Summary = {}
  const raw: Record<string, Record<string, number | undefined>> = {}
  for (const run of runs) {
    if (run.skipped !== undefined) continue
    const m: Record<string, number | undefined> = {}
    for (const w of ['rr1000', 'rrmax'] as const) {
      for (const k of ['p50', 'p90', 'p99'] as const) {
        m[`${w}.${k}Us`] = median(perRep(run, w, (s) => s[k]))
        m[`${w}.added${k}Us`] = run.config === PLAIN ? undefined : added(run, plain, w, k)
      }
      m[`${w}.rps`] = median(perRep(run, w, rate))
      m[`${w}.cpuSecPer1000Req`] = median(perRep(run, w, (s) => cpuPer(s.cpuSeconds, s.units / 1000)))
      m[`${w}.rssPeakMB`] = median(perRep(run, w, (s) => (maxOf(s.rssPeak) ?? NaN) / 2 ** 20))
    }
    for (const w of ['bulk1', 'bulk8'] as const) {
      m[`${w}.MBps`] = median(perRep(run, w, (s) => rate(s) / 1e6))
      m[`${w}.cpuSecPerGB`] = median(perRep(run, w, (s) => cpuPer(s.cpuSeconds, s.units / 1e9)))
      m[`${w}.rssPeakMB`] = median(perRep(run, w, (s) => (maxOf(s.rssPeak) ?? NaN) / 2 ** 20))
    }
    for (const w of ['cps', 'cpsFull'] as const) {
      m[`${w}.perSec`] = median(perRep(run, w, rate))
      m[`${w}.p50Us`] = median(perRep(run, w, (s) => s.p50))
      m[`${w}.cpuMsPerConn`] = median(perRep(run, w, (s) => cpuPer(s.cpuSeconds === undefined ? undefined : s.cpuSeconds * 1000, s.units)))
    }
    m['rss.idleMB'] = median(run.rssIdle.map((xs) => (maxOf(xs) ?? NaN) / 2 ** 20))
    m['errors'] = run.reps.reduce((n, r) => n + Object.values(r).reduce((k, s) => k + (s?.errors ?? 0), 0), 0)
    raw[run.config] = m
  }
  for (const [config, m] of Object.entries(raw)) {
    const row: Record<string, MetricSummary> = {}
    for (const [key, value] of Object.entries(m)) {
      row[key] = {
        ...(value !== undefined ? { value } : {}),
        ...optional('vsPlain', ratio(value, raw[PLAIN]?.[key])),
        ...optional('vsHaproxy', ratio(value, raw[HAPROXY]?.[key])),
      }
    }
    out[config] = row
  }
  return out
}

function optional<K extends string>(key: K, v: number | undefined): Partial<Record<K, number>> {
  return v === undefined ? {} : ({ [key]: v } as Record<K, number>)
}

function fmt(v: number | undefined, digits = 0): string {
  if (v === undefined || !Number.isFinite(v)) return '–'
  return v.toFixed(digits)
}

function x(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? '–' : `${v.toFixed(2)}×`
}

export function renderMarkdown(summary: Summary, runs: readonly ConfigRun[], setup: Setup, startup: Startup | undefined): string {
  const configs = runs.filter((r) => r.skipped === undefined).map((r) => r.config)
  const get = (c: string, k: string): MetricSummary => summary[c]?.[k] ?? {}
  const v = (c: string, k: string, d = 0): string => fmt(get(c, k).value, d)
  const out: string[] = []
  out.push(
    `Setup: Node ${setup.node}, OpenSSL ${setup.openssl}, kernel ${setup.kernel}, ${setup.cores} cores (${setup.cpu})` +
      `${setup.haproxy !== undefined ? `, HAProxy ${setup.haproxy}` : ''}${setup.stunnel !== undefined ? `, stunnel ${setup.stunnel}` : ''}; ` +
      `medians over ${setup.repetitions} interleaved repetitions, ${setup.secondsPerRun} s per run; ${setup.date}.`,
    '',
  )
  for (const r of runs) if (r.skipped !== undefined) out.push(`- ${r.config}: skipped (${r.skipped})`)
  if (runs.some((r) => r.skipped !== undefined)) out.push('')

  out.push('**Request/response, 1 KiB, one kept-alive connection** (µs; added = minus plaintext of the same repetition; CPU = both proxies)', '')
  out.push('| config | @1000/s p50 | p90 | p99 | added p50 | added p90 | added p99 | added p50 vs HAProxy | CPU s / 1000 req | max rate req/s | × plaintext | × HAProxy | max-rate p50 | p99 |')
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  const hap = summary[HAPROXY]
  for (const c of configs) {
    const addedVsHap = ratio(get(c, 'rr1000.addedp50Us').value, hap?.['rr1000.addedp50Us']?.value)
    out.push(
      `| ${c} | ${v(c, 'rr1000.p50Us')} | ${v(c, 'rr1000.p90Us')} | ${v(c, 'rr1000.p99Us')} | ${v(c, 'rr1000.addedp50Us')} | ${v(c, 'rr1000.addedp90Us')} | ${v(c, 'rr1000.addedp99Us')} | ${c === PLAIN ? '–' : x(addedVsHap)} | ${v(c, 'rr1000.cpuSecPer1000Req', 3)} | ${v(c, 'rrmax.rps')} | ${x(get(c, 'rrmax.rps').vsPlain)} | ${x(get(c, 'rrmax.rps').vsHaproxy)} | ${v(c, 'rrmax.p50Us')} | ${v(c, 'rrmax.p99Us')} |`,
    )
  }
  out.push('', '**Bulk transfer** (server → client, MB/s = 10⁶ B/s; CPU = both proxies)', '')
  out.push('| config | 1 conn MB/s | × plaintext | × HAProxy | CPU s / GB | 8 conns MB/s | × plaintext | × HAProxy | CPU s / GB |')
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const c of configs) {
    out.push(
      `| ${c} | ${v(c, 'bulk1.MBps')} | ${x(get(c, 'bulk1.MBps').vsPlain)} | ${x(get(c, 'bulk1.MBps').vsHaproxy)} | ${v(c, 'bulk1.cpuSecPerGB', 2)} | ${v(c, 'bulk8.MBps')} | ${x(get(c, 'bulk8.MBps').vsPlain)} | ${x(get(c, 'bulk8.MBps').vsHaproxy)} | ${v(c, 'bulk8.cpuSecPerGB', 2)} |`,
    )
  }
  out.push(
    '',
    `**New connection + 1 KiB exchange per iteration** (${setup.cpsConcurrency} in parallel; resumed = the client-side proxy resumes its TLS session to the server-side proxy)`,
    '',
  )
  out.push('| config | conn/s resumed | × plaintext | × HAProxy | CPU ms / conn | conn/s full handshake | × plaintext | × HAProxy | CPU ms / conn |')
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const c of configs) {
    const full = c === PLAIN ? 'cps' : 'cpsFull'
    const fullVsPlain = ratio(get(c, `${full}.perSec`).value, summary[PLAIN]?.['cps.perSec']?.value)
    out.push(
      `| ${c} | ${v(c, 'cps.perSec')} | ${x(get(c, 'cps.perSec').vsPlain)} | ${x(get(c, 'cps.perSec').vsHaproxy)} | ${v(c, 'cps.cpuMsPerConn', 2)} | ${v(c, `${full}.perSec`)} | ${x(fullVsPlain)} | ${x(get(c, `${full}.perSec`).vsHaproxy)} | ${v(c, `${full}.cpuMsPerConn`, 2)} |`,
    )
  }
  out.push('', '**Memory** (RSS per pod: the sum of its mesh processes — for envoy the daemon and its Envoy — the larger of client and server side, MB = 2²⁰ B)', '')
  out.push('| config | idle | peak @1000/s | peak bulk 8 conns |')
  out.push('|---|---:|---:|---:|')
  for (const c of configs) {
    if (c === PLAIN) continue
    out.push(`| ${c} | ${v(c, 'rss.idleMB', 1)} | ${v(c, 'rr1000.rssPeakMB', 1)} | ${v(c, 'bulk8.rssPeakMB', 1)} |`)
  }
  if (startup !== undefined && startup.readyMs.length > 0) {
    out.push(
      '',
      `**Startup**: \`podvm-mesh run\` spawn → ready with certificates from files: median ${fmt(median(startup.readyMs))} ms ` +
        `(min ${fmt(Math.min(...startup.readyMs))}, max ${fmt(Math.max(...startup.readyMs))}); fresh daemon RSS ${fmt(median(startup.rssFresh.map((b) => b / 2 ** 20)), 1)} MB.`,
    )
  }
  const errors = configs.map((c) => `${c} ${fmt(get(c, 'errors').value)}`).join(', ')
  out.push('', `Client-side errors over all runs: ${errors}.`, '')
  return out.join('\n')
}
