// The flood bench's clients, run inside the client pod; one JSON line per report.
//
//   node flood-client.js flood '{"host","port","target","sources":[...],"seconds","maxOpensPerSecond"}'
//     keeps `target` idle TCP connections open (nothing is ever sent), reopening the
//     ones the server closes, at most maxOpensPerSecond; prints {"open",...} every
//     second and stops after `seconds`.
//   node flood-client.js probe '{"host","port","ca","cert","key","count","gapMs","timeoutMs"}'
//     `count` mutual-TLS connections one after another (gapMs apart): connect, send
//     1 KiB, wait for the echo; prints the latency of each (ms) and the failures.
// Every loop is bounded by a count and a time.

import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'

interface FloodOptions {
  readonly host: string
  readonly port: number
  readonly target: number
  readonly sources: readonly string[]
  readonly seconds: number
  readonly maxOpensPerSecond: number
}

interface ProbeOptions {
  readonly host: string
  readonly port: number
  readonly ca: string
  readonly cert: string
  readonly key: string
  readonly count: number
  readonly gapMs: number
  readonly timeoutMs: number
}

const print = (obj: unknown): void => {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

/** Connection attempts in flight at once: the flood ramps up steadily instead of in one SYN burst. */
const MAX_CONNECTING = 256

async function flood(o: FloodOptions): Promise<void> {
  const open = new Set<net.Socket>()
  let connecting = 0
  let opened = 0
  let closedByServer = 0
  let errors = 0
  let budget = o.maxOpensPerSecond
  let next = 0
  let stopping = false
  const fill = (): void => {
    while (!stopping && open.size + connecting < o.target && connecting < MAX_CONNECTING && budget > 0) {
      budget--
      connecting++
      const source = o.sources.length > 0 ? o.sources[next++ % o.sources.length] : undefined
      const s = net.connect({ host: o.host, port: o.port, allowHalfOpen: true, ...(source !== undefined ? { localAddress: source } : {}) })
      let counted = false
      s.once('connect', () => {
        connecting--
        counted = true
        opened++
        open.add(s)
        fill()
      })
      // The server ending (FIN) or resetting the connection: it is gone, open another.
      s.once('end', () => s.destroy())
      s.on('error', () => {
        if (!counted) errors++
      })
      s.once('close', () => {
        if (!counted) {
          connecting--
        } else if (open.delete(s) && !stopping) {
          closedByServer++
        }
        fill()
      })
    }
  }
  const tick = setInterval(() => {
    budget = o.maxOpensPerSecond
    print({ open: open.size, opened, closedByServer, errors })
    fill()
  }, 1000)
  fill()
  await new Promise((r) => setTimeout(r, o.seconds * 1000))
  stopping = true
  clearInterval(tick)
  print({ done: true, open: open.size, opened, closedByServer, errors })
  for (const s of open) s.destroy()
}

async function probe(o: ProbeOptions): Promise<void> {
  const ca = readFileSync(o.ca)
  const cert = readFileSync(o.cert)
  const key = readFileSync(o.key)
  const payload = Buffer.alloc(1024, 0x61)
  const latenciesMs: number[] = []
  const failures: string[] = []
  for (let i = 0; i < o.count; i++) {
    const started = performance.now()
    const result = await new Promise<string | undefined>((resolve) => {
      let got = 0
      const s = tls.connect({ host: o.host, port: o.port, ca, cert, key })
      const timer = setTimeout(() => {
        s.destroy()
        resolve('timeout')
      }, o.timeoutMs)
      s.once('secureConnect', () => s.write(payload))
      s.on('data', (b: Buffer) => {
        got += b.length
        if (got >= payload.length) {
          clearTimeout(timer)
          s.destroy()
          resolve(undefined)
        }
      })
      s.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        resolve(e.code ?? e.message)
      })
      s.once('close', () => {
        clearTimeout(timer)
        resolve('closed')
      })
    })
    if (result === undefined) latenciesMs.push(performance.now() - started)
    else failures.push(result)
    await new Promise((r) => setTimeout(r, o.gapMs))
  }
  print({ latenciesMs, failures })
}

const [mode, json] = process.argv.slice(2)
if (mode === 'flood') await flood(JSON.parse(json ?? '{}') as FloodOptions)
else if (mode === 'probe') await probe(JSON.parse(json ?? '{}') as ProbeOptions)
else throw new Error('usage: flood-client.js flood|probe JSON')
process.exit(0)
