// `npm run bench:flood` (as root): the built-in data plane under a flood of idle
// connections. A server pod runs `podvm-mesh run --dataplane builtin` (every port mTLS,
// so `auto` never picks Envoy here) in front of an echo
// app; a client pod keeps N idle TCP connections open to it from 64 source addresses
// (reopening what the daemon closes, at most FLOOD_OPENS_PER_SECOND), while a mesh
// client from the pod's own address measures connect + mTLS handshake + 1 KiB echo,
// one connection after another, and the daemon's RSS is sampled.
//
// Knobs: FLOOD_COUNTS (default 0,2000,19000), FLOOD_REPS (3), FLOOD_SECONDS (steady
// window, 8), FLOOD_OPENS_PER_SECOND (5000), FLOOD_CLI (the podvm-mesh cli.js to run,
// default this checkout's dist/: point it at another build for a before/after),
// FLOOD_LABEL (names bench/results/flood-<label>.json), FLOOD_DAEMON_ARGS (extra
// `run` flags, e.g. "--max-pending 512"). Node raises its soft descriptor limit to the
// hard one; 19 000 connections need a hard RLIMIT_NOFILE above ~19 100 on both sides.

import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MeshLab, lineProcess, type LineProcess } from '../src/demo/index.js'
import { median, summarize } from './stats.js'

const HERE = dirname(fileURLToPath(import.meta.url))
/** bench/.build/bench → the repository root. */
const ROOT = resolve(HERE, '..', '..', '..')
const CLI = process.env['FLOOD_CLI'] ?? join(ROOT, 'dist', 'cli.js')
const RESULTS = join(ROOT, 'bench', 'results')
const NODE = process.execPath
const COUNTS = (process.env['FLOOD_COUNTS'] ?? '0,2000,19000').split(',').map(Number)
const REPS = Number(process.env['FLOOD_REPS'] ?? 3)
const STEADY_SECONDS = Number(process.env['FLOOD_SECONDS'] ?? 8)
const OPENS_PER_SECOND = Number(process.env['FLOOD_OPENS_PER_SECOND'] ?? 5000)
const LABEL = process.env['FLOOD_LABEL'] ?? 'latest'
const DAEMON_ARGS = (process.env['FLOOD_DAEMON_ARGS'] ?? '').split(' ').filter((a) => a !== '')
const SOURCES = Array.from({ length: 64 }, (_, i) => `10.84.0.${100 + i}`)
const APP_PORT = 9010

interface Sample {
  readonly count: number
  readonly rep: number
  readonly rssIdleMB: number
  readonly rssMedianMB: number
  readonly rssMaxMB: number
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly max: number }
  readonly probeFailures: readonly string[]
  readonly floodOpen: number
  readonly floodOpened: number
  readonly metrics: Readonly<Record<string, number>>
  /** The daemon's podvm_mesh_* sample lines, as scraped. */
  readonly metricsText: readonly string[]
}

function log(msg: string): void {
  process.stderr.write(`[flood ${new Date().toISOString().slice(11, 19)}] ${msg}\n`)
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function rssMB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = /VmRSS:\s+(\d+) kB/.exec(status)
  return m === null ? NaN : Number(m[1]) / 1024
}

/** The counters worth keeping from /metrics (failures by reason, active/pending connections). */
function pickMetrics(text: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const m = /^podvm_mesh_(failures_total\{reason="([A-Z_]+)"\}|connections_active|connections_pending|handshakes_total\{listener="ingress"\}) (\d+)/.exec(line)
    if (m !== null) out[m[2] ?? m[1]!.replace(/\{.*/, '')] = Number(m[3])
  }
  return out
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:flood needs root (network namespaces)')
  log(`daemon: ${CLI}${DAEMON_ARGS.length > 0 ? ` ${DAEMON_ARGS.join(' ')}` : ''}`)
  const lab = await MeshLab.create({ prefix: 'pmflood', subnet: 84, nodes: ['cli', 'srv'] })
  const topo = lab.topology
  const onSignal = (): void => {
    void lab.destroy().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  const samples: Sample[] = []
  try {
    const cli = lab.node('cli')
    const srv = lab.node('srv')
    for (const n of ['cli', 'srv']) {
      await topo.exec(n, 'sysctl', ['-qw', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65000', 'net.core.somaxconn=4096'])
    }
    for (const a of SOURCES) await topo.exec('cli', 'ip', ['addr', 'add', `${a}/24`, 'dev', 'eth0'])
    await lab.pki.issue('srv', ['srv.flood.test', srv.ipv4])
    await lab.pki.issue('cli', ['cli.flood.test', cli.ipv4])
    const cliTls = lab.pki.tlsDir('cli')
    const backend = lineProcess(topo.spawn('srv', NODE, [join(HERE, 'backend.js'), JSON.stringify({ echo: [APP_PORT], source: [] })]))
    await backend.waitFor((l) => l.includes(`"listening":${APP_PORT}`), 10_000, 'backend')

    for (let rep = 0; rep < REPS; rep++) {
      // Rotate the order per repetition, so drift lands on every count alike.
      const order = COUNTS.map((_, i) => COUNTS[(i + rep) % COUNTS.length] as number)
      for (const count of order) {
        const daemon = lineProcess(topo.spawn('srv', NODE, [CLI, 'run', '--dataplane', 'builtin', '--tls-dir', lab.pki.tlsDir('srv'), ...DAEMON_ARGS]), {
          maxLines: 2000,
        })
        let flood: LineProcess | undefined
        try {
          await daemon.waitFor((l) => l.includes('"msg":"ready"'), 30_000, 'daemon ready')
          const pid = daemon.child.pid ?? -1
          await sleep(1000)
          const rssIdleMB = await rssMB(pid)
          let floodOpen = 0
          let floodOpened = 0
          if (count > 0) {
            const rampSeconds = Math.ceil(count / OPENS_PER_SECOND) + 3
            const spec = { host: srv.ipv4, port: APP_PORT, target: count, sources: SOURCES, seconds: rampSeconds + STEADY_SECONDS + 30, maxOpensPerSecond: OPENS_PER_SECOND }
            flood = lineProcess(topo.spawn('cli', NODE, [join(HERE, 'flood-client.js'), 'flood', JSON.stringify(spec)]), { maxLines: 200 })
            await sleep(rampSeconds * 1000)
          }
          // Steady window: RSS every 250 ms while the mesh client measures.
          const rss: number[] = []
          let sampling = true
          const sampler = (async () => {
            while (sampling) {
              rss.push(await rssMB(pid))
              await sleep(250)
            }
          })()
          const gapMs = Math.max(0, Math.floor((STEADY_SECONDS * 1000) / 20) - 20)
          const probeSpec = {
            host: srv.ipv4,
            port: APP_PORT,
            ca: join(cliTls, 'mesh-ca.pem'),
            cert: join(cliTls, 'certChain.pem'),
            key: join(cliTls, 'key.pem'),
            count: 20,
            gapMs,
            timeoutMs: 10_000,
          }
          const r = await topo.exec('cli', NODE, [join(HERE, 'flood-client.js'), 'probe', JSON.stringify(probeSpec)], { timeoutMs: 300_000 })
          sampling = false
          await sampler
          const probe = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { latenciesMs?: number[]; failures?: string[] }
          const lat = summarize(probe.latenciesMs ?? [])
          if (flood !== undefined) {
            const last = flood.lines.flatMap((l) => (l.startsWith('{') ? [JSON.parse(l) as { open: number; opened: number }] : [])).pop()
            floodOpen = last?.open ?? 0
            floodOpened = last?.opened ?? 0
          }
          const m = await topo.exec('srv', NODE, ['-e', "fetch('http://127.0.0.1:15020/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"])
          const sample: Sample = {
            count,
            rep,
            rssIdleMB,
            rssMedianMB: median(rss) ?? NaN,
            rssMaxMB: Math.max(...rss),
            latencyMs: { p50: lat.p50 ?? NaN, p90: lat.p90 ?? NaN, max: Math.max(...(probe.latenciesMs ?? [NaN])) },
            probeFailures: probe.failures ?? ['no result'],
            floodOpen,
            floodOpened,
            metrics: pickMetrics(m.stdout),
            metricsText: m.stdout.split('\n').filter((l) => l.startsWith('podvm_mesh_')),
          }
          samples.push(sample)
          log(
            `rep ${rep} N=${count}: RSS idle ${rssIdleMB.toFixed(1)} MB, median ${sample.rssMedianMB.toFixed(1)}, max ${sample.rssMaxMB.toFixed(1)}; ` +
              `legit p50 ${sample.latencyMs.p50.toFixed(1)} ms p90 ${sample.latencyMs.p90.toFixed(1)} max ${sample.latencyMs.max.toFixed(1)}, ` +
              `failures ${sample.probeFailures.length}; flood open ${floodOpen} (opened ${floodOpened}); ${JSON.stringify(sample.metrics)}`,
          )
        } finally {
          flood?.kill('SIGKILL')
          daemon.kill('SIGKILL')
          await Promise.all([flood?.exited, daemon.exited])
        }
      }
    }
  } finally {
    await lab.destroy()
  }
  await mkdir(RESULTS, { recursive: true })
  // No machine paths in the results: which build ran is the label's business.
  const daemon = process.env['FLOOD_CLI'] === undefined ? 'dist/cli.js of this checkout' : 'FLOOD_CLI (another build)'
  await writeFile(join(RESULTS, `flood-${LABEL}.json`), `${JSON.stringify({ daemon, daemonArgs: DAEMON_ARGS, samples }, null, 1)}\n`)
  const rows = COUNTS.map((count) => {
    const s = samples.filter((x) => x.count === count)
    const med = (f: (x: Sample) => number): number => median(s.map(f)) ?? NaN
    return `| ${count} | ${med((x) => x.rssIdleMB).toFixed(1)} | ${med((x) => x.rssMedianMB).toFixed(1)} | ${med((x) => x.rssMaxMB).toFixed(1)} | ${med((x) => x.latencyMs.p50).toFixed(1)} | ${med((x) => x.latencyMs.p90).toFixed(1)} | ${med((x) => x.latencyMs.max).toFixed(1)} | ${s.reduce((n, x) => n + x.probeFailures.length, 0)} | ${med((x) => x.floodOpen)} |`
  })
  process.stdout.write(
    [
      `flood bench (${LABEL}): medians over ${REPS} repetitions; RSS in MB (2^20 B), legit = connect + mTLS handshake + 1 KiB echo, 20 per run`,
      '',
      '| idle connections | RSS before flood | RSS median | RSS max | legit p50 ms | p90 ms | max ms | legit failures (all reps) | flood sockets open at the client |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
      '',
    ].join('\n'),
  )
}

void main().catch((err: unknown) => {
  process.stderr.write(`bench:flood failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(1)
})
