// A stand-in for the envoy binary, for what a real one cannot be made to do on cue (crash,
// ignore SIGTERM, report chosen counters); the real Envoy runs in test/e2e. Written into
// a temp directory by the tests; behaviour comes from control.json next to it, and every
// event is appended to record.jsonl there, so tests assert on what the process saw.

import { chmodSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'

export interface FakeControl {
  /** crash: exit with exitCode after crashAfterMs. serve: run the admin API until SIGTERM. */
  readonly mode: 'crash' | 'serve'
  readonly exitCode?: number
  readonly crashAfterMs?: number
  /** serve: ignore SIGTERM (to exercise SIGKILL). */
  readonly ignoreTerm?: boolean
  /** serve: /ready answers 503 PRE_INITIALIZING until this long after start, then 200 LIVE. */
  readonly readyAfterMs?: number
  /** serve: what GET /stats?format=json reports (read per request). */
  readonly stats?: Record<string, number>
}

export interface FakeRecord {
  readonly t: number
  readonly pid: number
  readonly event: 'start' | 'bad-bootstrap' | 'drain' | 'sigterm'
  readonly argv?: string[]
  readonly sds?: { path: string; exists: boolean }[]
  readonly url?: string
}

const SCRIPT = String.raw`
const fs = require('fs'), path = require('path'), http = require('http')
const dir = __dirname
const control = JSON.parse(fs.readFileSync(path.join(dir, 'control.json'), 'utf8'))
const argv = process.argv.slice(2)
const startedAt = Date.now()
const rec = (o) => fs.appendFileSync(path.join(dir, 'record.jsonl'), JSON.stringify({ t: Date.now(), pid: process.pid, ...o }) + '\n')
let bootstrap
try {
  bootstrap = JSON.parse(fs.readFileSync(argv[argv.indexOf('-c') + 1], 'utf8'))
} catch (e) {
  process.stderr.write('[critical][main] error initializing configuration: ' + e.message + '\n')
  rec({ event: 'bad-bootstrap' })
  process.exit(1)
}
const sds = new Set()
const walk = (v) => {
  if (Array.isArray(v)) return v.forEach(walk)
  if (v && typeof v === 'object') {
    if (v.path_config_source) sds.add(v.path_config_source.path)
    Object.values(v).forEach(walk)
  }
}
walk(bootstrap)
rec({ event: 'start', argv, sds: [...sds].sort().map((p) => ({ path: p, exists: fs.existsSync(p) })) })
process.stderr.write('[info][main] initializing epoch 0 (fake)\n')
process.stderr.write('[warning][config] deprecated option in use\n  second line of the warning\n')
if (control.mode === 'crash') {
  setTimeout(() => {
    process.stderr.write('[critical][backtrace] Caught Segmentation fault, suspect faulting address 0x0\n')
    process.exit(control.exitCode ?? 1)
  }, control.crashAfterMs ?? 0)
} else {
  const port = bootstrap.admin.address.socket_address.port_value
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url.startsWith('/drain_listeners')) rec({ event: 'drain', url: req.url })
    if (req.method === 'GET' && req.url === '/ready') {
      const live = Date.now() - startedAt >= (control.readyAfterMs || 0)
      res.statusCode = live ? 200 : 503
      return res.end(live ? 'LIVE\n' : 'PRE_INITIALIZING\n')
    }
    if (req.method === 'GET' && req.url.startsWith('/stats?format=json')) {
      const now = JSON.parse(fs.readFileSync(path.join(dir, 'control.json'), 'utf8')).stats || {}
      res.setHeader('content-type', 'application/json')
      return res.end(JSON.stringify({ stats: [...Object.entries(now).map(([name, value]) => ({ name, value })), { histograms: {} }] }))
    }
    res.end('OK\n')
  })
  server.listen(port, '127.0.0.1')
  process.on('SIGTERM', () => {
    rec({ event: 'sigterm' })
    if (control.ignoreTerm) return
    process.stderr.write('[info][main] caught SIGTERM\n')
    server.close()
    process.exit(0)
  })
}
`

export class FakeEnvoy {
  readonly path: string
  constructor(readonly dir: string) {
    this.path = join(dir, 'envoy')
    writeFileSync(this.path, `#!${process.execPath}\n${SCRIPT}`)
    chmodSync(this.path, 0o755)
    this.control({ mode: 'serve' })
  }

  control(c: FakeControl): void {
    writeFileSync(join(this.dir, 'control.json'), JSON.stringify(c))
  }

  records(): FakeRecord[] {
    const f = join(this.dir, 'record.jsonl')
    if (!existsSync(f)) return []
    return readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as FakeRecord)
  }

  events(event: FakeRecord['event']): FakeRecord[] {
    return this.records().filter((r) => r.event === event)
  }
}
