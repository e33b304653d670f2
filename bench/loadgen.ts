// The benchmark's load generator, run inside the client pod: one workload per
// invocation, one JSON result line on stdout. Every loop is bounded by a duration and
// by a count. Node itself is the client: its own cost is the same in every
// configuration, and the plaintext row shows what it alone amounts to.
//
//   node loadgen.js '{"kind":"rr","host":"10.81.0.2","port":9000,"durationMs":3000,"rate":1000}'

import net from 'node:net'
import { summarize, type LatencySummary } from './stats.js'

export type LoadSpec =
  | { kind: 'rr'; host: string; port: number; durationMs: number; warmupMs: number; size: number; rate?: number }
  | { kind: 'bulk'; host: string; port: number; durationMs: number; warmupMs: number; connections: number }
  | { kind: 'cps'; host: string; port: number; durationMs: number; size: number; concurrency: number }

export type LoadResult =
  | { kind: 'rr'; requests: number; seconds: number; rate: number; latencyUs: LatencySummary; errors: number }
  | { kind: 'bulk'; bytes: number; seconds: number; bytesPerSecond: number; errors: number }
  | {
      kind: 'cps'
      connections: number
      seconds: number
      perSecond: number
      latencyUs: LatencySummary
      errors: number
      /** Failed iterations by cause: an error code, `timeout`, or `closed` (closed before the whole reply). */
      errorKinds: Record<string, number>
    }

/** Upper bound on recorded samples (and so on requests) per run. */
const MAX_SAMPLES = 2_000_000
const CONNECT_TIMEOUT_MS = 5_000

function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, noDelay: true })
    const t = setTimeout(() => {
      s.destroy()
      reject(new Error(`connect ${host}:${port} timed out`))
    }, CONNECT_TIMEOUT_MS)
    s.once('connect', () => {
      clearTimeout(t)
      resolve(s)
    })
    s.once('error', (err) => {
      clearTimeout(t)
      reject(err)
    })
  })
}

/**
 * One kept-alive connection; a request is `size` bytes, the echo of all of them is the
 * response. With `rate`, requests are sent on a schedule (one in flight at most; a late
 * response delays the next send, and latency counts from the actual send); without,
 * back to back.
 */
async function rr(spec: Extract<LoadSpec, { kind: 'rr' }>): Promise<LoadResult> {
  const socket = await connect(spec.host, spec.port)
  const request = Buffer.alloc(spec.size, 0x61)
  const samples: number[] = []
  let errors = 0
  let received = 0
  let sentAt = 0
  let inFlight = false
  let sent = 0
  const start = nowUs()
  const warmEnd = start + spec.warmupMs * 1000
  const end = warmEnd + spec.durationMs * 1000
  const interval = spec.rate === undefined ? 0 : 1e6 / spec.rate
  let measuredFrom = 0
  let measured = 0
  return new Promise((resolve) => {
    let finished = false
    let ticker: NodeJS.Timeout | undefined
    const finish = (): void => {
      if (finished) return
      finished = true
      if (ticker !== undefined) clearInterval(ticker)
      socket.destroy()
      const seconds = (nowUs() - measuredFrom) / 1e6
      resolve({ kind: 'rr', requests: measured, seconds, rate: measured / seconds, latencyUs: summarize(samples), errors })
    }
    const send = (): void => {
      inFlight = true
      sentAt = nowUs()
      sent++
      socket.write(request)
    }
    const due = (): boolean => interval === 0 || sent < Math.floor((nowUs() - start) / interval) + 1
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length
      if (received < spec.size) return
      received -= spec.size
      const t = nowUs()
      inFlight = false
      if (t >= warmEnd) {
        if (measuredFrom === 0) measuredFrom = t
        else {
          samples.push(t - sentAt)
          measured++
        }
      }
      if (t >= end || samples.length >= MAX_SAMPLES) return finish()
      if (due()) send()
    })
    socket.on('error', () => {
      errors++
      finish()
    })
    socket.on('close', finish)
    // Hard stop whatever happens.
    setTimeout(finish, spec.warmupMs + spec.durationMs + 10_000).unref()
    if (interval > 0) {
      // 1 ms is the timer granularity; a tick sends whatever is due and idle.
      ticker = setInterval(() => {
        if (!inFlight && due()) send()
        if (nowUs() >= end + 1000_000) finish()
      }, 1)
    }
    send()
  })
}

/** `connections` parallel downloads from the source; bytes counted after the warm-up. */
async function bulk(spec: Extract<LoadSpec, { kind: 'bulk' }>): Promise<LoadResult> {
  const sockets = await Promise.all(Array.from({ length: spec.connections }, () => connect(spec.host, spec.port)))
  let bytes = 0
  let errors = 0
  let counting = false
  for (const s of sockets) {
    s.on('data', (c: Buffer) => {
      if (counting) bytes += c.length
    })
    s.on('error', () => errors++)
  }
  await new Promise((r) => setTimeout(r, spec.warmupMs))
  counting = true
  const t0 = nowUs()
  await new Promise((r) => setTimeout(r, spec.durationMs))
  counting = false
  const seconds = (nowUs() - t0) / 1e6
  for (const s of sockets) s.destroy()
  return { kind: 'bulk', bytes, seconds, bytesPerSecond: bytes / seconds, errors }
}

/** New connection, one `size`-byte exchange, close; `concurrency` loops in parallel. */
async function cps(spec: Extract<LoadSpec, { kind: 'cps' }>): Promise<LoadResult> {
  const request = Buffer.alloc(spec.size, 0x62)
  const samples: number[] = []
  let errors = 0
  let done = 0
  const errorKinds: Record<string, number> = {}
  const t0 = nowUs()
  const end = t0 + spec.durationMs * 1000
  const once = (): Promise<void> =>
    new Promise((resolve) => {
      const began = nowUs()
      let received = 0
      let settled = false
      const s = net.connect({ host: spec.host, port: spec.port, noDelay: true })
      const settle = (ok: boolean, why = 'closed'): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (!ok) errorKinds[why] = (errorKinds[why] ?? 0) + 1
        if (ok) {
          done++
          samples.push(nowUs() - began)
          s.end()
        } else {
          errors++
          s.destroy()
        }
        resolve()
      }
      const timer = setTimeout(() => settle(false, 'timeout'), CONNECT_TIMEOUT_MS)
      s.once('connect', () => s.write(request))
      s.on('data', (c: Buffer) => {
        received += c.length
        if (received >= spec.size) settle(true)
      })
      s.on('error', (err: NodeJS.ErrnoException) => settle(false, err.code ?? err.message))
      s.on('close', () => settle(received >= spec.size))
    })
  const loop = async (): Promise<void> => {
    while (nowUs() < end && samples.length < MAX_SAMPLES && errors < 1000) await once()
  }
  await Promise.all(Array.from({ length: spec.concurrency }, loop))
  const seconds = (nowUs() - t0) / 1e6
  return { kind: 'cps', connections: done, seconds, perSecond: done / seconds, latencyUs: summarize(samples), errors, errorKinds }
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec
  let result: LoadResult
  switch (spec.kind) {
    case 'rr':
      result = await rr(spec)
      break
    case 'bulk':
      result = await bulk(spec)
      break
    case 'cps':
      result = await cps(spec)
      break
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}

main().catch((err: unknown) => {
  process.stdout.write(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`)
  process.exit(1)
})
