// The built-in data plane as its own process in a network namespace, for the netns
// suites: the tproxy ruleset and policy routing that feed it, the plaintext app it
// forwards to, and a line reader for the JSON the process and its logs print.

import { join } from 'node:path'
import { TPROXY_MARK, TPROXY_ROUTE_TABLE } from '../../../src/config/types.js'
import { onLines } from '../../../src/demo/lab.js'
import type { Topology } from '../../e2e/netns.js'

const NETNS_DIR = import.meta.dirname
export const NODE = process.execPath

/** Scripts run inside the namespaces (clients); each prints one JSON result. */
export const netnsScript = (name: string): string => join(NETNS_DIR, name)

/** What tls-resume-client.mjs prints for each of its two connections. */
export interface ResumeExchange {
  readonly secure: boolean
  readonly resumed?: boolean
  readonly received: string
  readonly error?: string
  readonly gotSession: boolean
}

/** Inbound TCP to the data plane: 8081 to 15007 (no client certificate), the rest to 15006. */
export function ingressRuleset(table: string): string {
  return `
table inet ${table} {
  chain prerouting {
    type filter hook prerouting priority mangle; policy accept;
    iifname "lo" accept
    tcp dport 8081 tproxy to :15007 meta mark set ${TPROXY_MARK} accept
    meta l4proto tcp tproxy to :15006 meta mark set ${TPROXY_MARK} accept
  }
}
`
}

/** Installs `ruleset` in `node` and the policy routing that makes tproxy's mark local (IPv4, and IPv6 unless told). */
export async function installTproxy(topo: Topology, node: string, ruleset: string, families: readonly ('4' | '6')[] = ['4', '6']): Promise<void> {
  const steps: [string, string[], string?][] = [['nft', ['-f', '-'], ruleset]]
  for (const fam of families) {
    steps.push(['ip', [`-${fam}`, 'rule', 'add', 'fwmark', String(TPROXY_MARK), 'lookup', String(TPROXY_ROUTE_TABLE)]])
    steps.push(['ip', [`-${fam}`, 'route', 'add', 'local', fam === '4' ? '0.0.0.0/0' : '::/0', 'dev', 'lo', 'table', String(TPROXY_ROUTE_TABLE)]])
  }
  for (const [cmd, args, input] of steps) {
    const r = await topo.exec(node, cmd, args, input === undefined ? {} : { input })
    if (r.code !== 0) throw new Error(`${node}: ${cmd} ${args.join(' ')}: ${r.stderr}`)
  }
}

// The workload: plaintext, answers `[port]` then echoes until the client half-closes.
const APP = `
const net = require('node:net')
for (const port of [8080, 8081]) {
  net.createServer({ allowHalfOpen: true }, (s) => { s.write('[' + port + ']'); s.pipe(s); s.on('error', () => {}) })
    .listen({ host: '::', port, ipv6Only: false }, () => console.log('listening ' + port))
}
`

/** Starts the app on 8080 and 8081 in `node`; resolves once both listen. */
export async function startApp(topo: Topology, node: string): Promise<void> {
  const out = new LineReader(topo.spawn(node, NODE, ['-e', APP]).stdout)
  const deadline = Date.now() + 10_000
  while (out.lines.filter((l) => l.startsWith('listening')).length < 2) {
    if (Date.now() > deadline) throw new Error('app did not start')
    await new Promise((r) => setTimeout(r, 50))
  }
}

export class LineReader {
  readonly lines: string[] = []
  #waiters: (() => void)[] = []
  constructor(stream: NodeJS.ReadableStream | null) {
    onLines(stream, (line) => {
      this.lines.push(line)
      for (const w of this.#waiters.splice(0)) w()
    })
  }
  /** Every line that is JSON, parsed. */
  json(): Record<string, any>[] {
    return this.lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, any>]
      } catch {
        return []
      }
    })
  }
  /** The first JSON line at index >= from that satisfies pred. */
  async next<T = Record<string, any>>(pred: (obj: Record<string, any>) => boolean, from = 0, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      for (const l of this.lines.slice(from)) {
        try {
          const obj = JSON.parse(l) as Record<string, any>
          if (pred(obj)) return obj as T
        } catch {
          // not JSON
        }
      }
      if (Date.now() > deadline) throw new Error(`no matching line within ${timeoutMs} ms; got: ${this.lines.slice(-10).join(' | ')}`)
      await new Promise<void>((r) => {
        this.#waiters.push(r)
        setTimeout(r, 100)
      })
    }
  }
}

/** dataplane-main.ts in a namespace: commands on stdin (`load`, `stats`), JSON answers on stdout, pino on stderr. */
export interface DataPlaneProcess {
  /** Sends a command; returns the stdout line index its answer will be at or after. */
  command(line: string): number
  readonly out: LineReader
  readonly stderr: LineReader
  stats(): Promise<Record<string, any>>
}

/**
 * Starts the data plane from this checkout's sources in `node` with the certificates in
 * `tlsDir` (loaded on the `load` command), and waits until its listeners are bound.
 */
export async function startDataPlane(
  topo: Topology,
  node: string,
  tlsDir: string,
  opts: { readonly capture?: boolean; readonly options?: Record<string, unknown> } = {},
): Promise<DataPlaneProcess> {
  const args = ['--import', netnsScript('ts-register.mjs'), netnsScript('dataplane-main.ts'), tlsDir, opts.capture === true ? 'capture' : '-']
  if (opts.options !== undefined) args.push(JSON.stringify(opts.options))
  const child = topo.spawn(node, NODE, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const out = new LineReader(child.stdout)
  const stderr = new LineReader(child.stderr)
  const command = (line: string): number => {
    const before = out.lines.length
    child.stdin?.write(`${line}\n`)
    return before
  }
  await out.next((o) => o.ready === true).catch((err: Error) => {
    throw new Error(`${err.message}\nstderr: ${stderr.lines.slice(-10).join('\n')}`)
  })
  return {
    command,
    out,
    stderr,
    async stats() {
      const before = command('stats')
      return (await out.next<{ stats: Record<string, any> }>((o) => 'stats' in o, before)).stats
    },
  }
}
