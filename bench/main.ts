// `npm run bench` (as root): plaintext, the built-in mesh and peer TLS proxies on one
// two-pod topology, the same workloads interleaved round-robin per repetition.
// Results go to bench/results/latest.{json,md}. Knobs: BENCH_QUICK=1, BENCH_REPS,
// BENCH_SECONDS (per workload run), BENCH_CONFIGS and BENCH_WORKLOADS (comma lists),
// BENCH_DAEMON_NODE_ARGS (node flags for the mesh daemons, e.g. --cpu-prof).

import { spawnSync, type ChildProcess } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, release } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MeshLab, lineProcess, run } from '../src/demo/index.js'
import type { LoadResult, LoadSpec } from './loadgen.js'
import { haproxyClient, haproxyServer, stunnelClient, stunnelServer, type PeerFiles, type PeerRoute, type PeerSide } from './peers.js'
import { renderMarkdown, summarize, WORKLOADS, type ConfigRun, type Sample, type Setup, type Startup, type Workload } from './report.js'

const HERE = dirname(fileURLToPath(import.meta.url))
/** bench/.build/bench → the repository root. */
const ROOT = resolve(HERE, '..', '..', '..')
const CLI = join(ROOT, 'dist', 'cli.js')
const RESULTS = join(ROOT, 'bench', 'results')
const NODE = process.execPath

const QUICK = process.env['BENCH_QUICK'] === '1'
const REPS = Number(process.env['BENCH_REPS'] ?? (QUICK ? 3 : 5))
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? (QUICK ? 1 : 2.5))
const WARMUP_MS = 300
/** Parallel connection loops in the new-connection workload. */
const CPS_CONCURRENCY = Number(process.env['BENCH_CPS_CONCURRENCY'] ?? 8)
const ONLY = process.env['BENCH_CONFIGS']?.split(',').map((s) => s.trim())
/** A subset of the workloads (comma list), for profiling one at a time. */
const ONLY_WORKLOADS = process.env['BENCH_WORKLOADS']?.split(',').map((s) => s.trim())
/** Extra node flags for the mesh daemons, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` for profiling. */
const DAEMON_NODE_ARGS = process.env['BENCH_DAEMON_NODE_ARGS']?.split(' ').filter((a) => a !== '') ?? []

const SERVER_NAME = 'srv.bench.test'
/** The Envoy data plane runs in its own pair of pods (it binds the same mesh ports). */
const ENVOY_SERVER_NAME = 'esrv.bench.test'
// Backend ports: plaintext and peers reach the app on PLAIN_*; the mesh's ingress
// captures MESH_* (everything not listed as an exception).
const APP = { echo: 9000, source: 9001 } as const
const MESH_APP = { echo: 9010, source: 9011 } as const

interface Endpoints {
  readonly echo: string
  readonly source: string
  /** Same route, client side never resumes TLS sessions. */
  readonly echoFull?: string
}

interface Config {
  readonly name: string
  readonly endpoints: Endpoints
  /** The namespace the load generator runs in (the client pod of this configuration). */
  readonly node: string
  /**
   * The processes of each side (client pod, server pod). A side's RSS is the sum of its
   * processes: the Envoy data plane is the daemon plus its Envoy.
   */
  readonly sides: () => number[][]
  /** Recent output of the configuration's processes, for failures. */
  readonly diag?: () => string
}

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`)
}

function hostPort(hp: string): { host: string; port: number } {
  const i = hp.lastIndexOf(':')
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) }
}

// ---- /proc -------------------------------------------------------------------------

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim() || 100)

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 14 and 15 (utime, stime); f[0] is field 3.
  return (Number(f[11]) + Number(f[12])) / CLK_TCK
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = /VmRSS:\s+(\d+) kB/.exec(status)
  return m === null ? NaN : Number(m[1]) * 1024
}

async function sideRss(pids: readonly number[]): Promise<number> {
  let t = 0
  for (const p of pids) t += await rssBytes(p)
  return t
}

async function totalCpu(pids: readonly number[]): Promise<number> {
  let t = 0
  for (const p of pids) t += await cpuSeconds(p)
  return t
}

// ---- processes ------------------------------------------------------------------------

function collect(child: ChildProcess): { lines: string[]; waitFor: (re: RegExp, ms: number, what: string) => Promise<void> } {
  const p = lineProcess(child, { maxLines: 2000 })
  return { lines: p.lines, waitFor: async (re, ms, what) => void (await p.waitFor((l) => re.test(l), ms, what)) }
}

async function ensurePackage(bin: string, pkg: string): Promise<string | undefined> {
  if ((await run('sh', ['-c', `command -v ${bin}`])).code === 0) return undefined
  log(`${bin} missing: apt-get install ${pkg}`)
  let r = await run('apt-get', ['install', '-y', '--no-install-recommends', pkg], { timeoutMs: 300_000 })
  if (r.code !== 0) {
    await run('apt-get', ['update'], { timeoutMs: 300_000 })
    r = await run('apt-get', ['install', '-y', '--no-install-recommends', pkg], { timeoutMs: 300_000 })
  }
  return r.code === 0 ? undefined : `apt-get install ${pkg} failed: ${r.stderr.trim().split('\n').pop() ?? ''}`
}

function firstLine(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args)
  const s = `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}`.split('\n').find((l) => l.trim() !== '')
  return r.error === undefined ? s?.trim() : undefined
}

// ---- main -----------------------------------------------------------------------------

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('npm run bench needs root (network namespaces)')
  const skipped: Record<string, string> = {}
  const hapMissing = await ensurePackage('haproxy', 'haproxy')
  if (hapMissing !== undefined) skipped['haproxy'] = hapMissing
  const stunMissing = await ensurePackage('stunnel4', 'stunnel4')
  if (stunMissing !== undefined) skipped['stunnel'] = stunMissing
  if ((await run('sh', ['-c', 'command -v envoy'])).code !== 0) skipped['envoy'] = 'no envoy binary on PATH (scripts/setup.sh installs it)'
  const want = (c: string): boolean => (ONLY === undefined || ONLY.includes(c)) && skipped[c] === undefined

  const lab = await MeshLab.create({
    prefix: 'pmbench',
    subnet: 81,
    nodes: ['cli', 'srv', 'boot', 'ecli', 'esrv'],
    hosts: { srv: [SERVER_NAME], esrv: [ENVOY_SERVER_NAME] },
  })
  const topo = lab.topology
  const onSignal = (): void => {
    void lab.destroy().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const cli = lab.node('cli')
    const srv = lab.node('srv')
    for (const n of ['cli', 'srv', 'ecli', 'esrv']) {
      // Thousands of short connections per second: reuse TIME_WAIT ports, allow a deep backlog.
      await topo.exec(n, 'sysctl', ['-qw', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65000', 'net.core.somaxconn=4096'])
    }
    await lab.pki.issue('srv', [SERVER_NAME, srv.ipv4])
    await lab.pki.issue('cli', ['cli.bench.test', cli.ipv4])
    await lab.pki.issue('boot', ['boot.bench.test'])
    await lab.pki.issue('esrv', [ENVOY_SERVER_NAME, lab.node('esrv').ipv4])
    await lab.pki.issue('ecli', ['ecli.bench.test', lab.node('ecli').ipv4])
    const files = async (node: string): Promise<PeerFiles> => {
      const dir = lab.pki.tlsDir(node)
      const combined = join(lab.workDir, `${node}-combined.pem`)
      await writeFile(combined, (await readFile(join(dir, 'certChain.pem'), 'utf8')) + (await readFile(join(dir, 'key.pem'), 'utf8')), { mode: 0o600 })
      return { ca: join(dir, 'mesh-ca.pem'), chain: join(dir, 'certChain.pem'), key: join(dir, 'key.pem'), combined }
    }

    const backend = topo.spawn('srv', NODE, [join(HERE, 'backend.js'), JSON.stringify({ echo: [APP.echo, MESH_APP.echo], source: [APP.source, MESH_APP.source] })])
    const backendOut = collect(backend)
    await backendOut.waitFor(new RegExp(`"listening":${MESH_APP.source}`), 10_000, 'backend')

    const configs: Config[] = []
    if (want('plaintext')) {
      configs.push({
        name: 'plaintext',
        endpoints: { echo: `${srv.ipv4}:${APP.echo}`, source: `${srv.ipv4}:${APP.source}` },
        node: 'cli',
        sides: () => [],
      })
    }
    const ingressExceptions = [
      `app#${APP.echo}#true`,
      `appsrc#${APP.source}#true`,
      'hap#9020#true',
      'hapsrc#9021#true',
      'stn#9030#true',
      'stnsrc#9031#true',
    ].join('##')
    let meshPids: number[] = []
    const meshChildren: ChildProcess[] = []
    const meshOutput: string[][] = []
    if (want('builtin')) {
      const egress = `echo#127.0.0.1:19010#${SERVER_NAME}:${MESH_APP.echo}##src#127.0.0.1:19011#${SERVER_NAME}:${MESH_APP.source}`
      // Pinned: `auto` would pick Envoy wherever it is installed.
      const server = topo.spawn('srv', NODE, [...DAEMON_NODE_ARGS, CLI, 'run', '--dataplane', 'builtin', '--ingress', ingressExceptions, '--tls-dir', lab.pki.tlsDir('srv')])
      const client = topo.spawn('cli', NODE, [
        ...DAEMON_NODE_ARGS, CLI, 'run', '--dataplane', 'builtin', '--ingress', 'DISABLED', '--egress', egress, '--tls-dir', lab.pki.tlsDir('cli'),
      ])
      meshChildren.push(server, client)
      const outs = [collect(server), collect(client)]
      meshOutput.push(...outs.map((o) => o.lines))
      await Promise.all([
        outs[0]?.waitFor(/"msg":"ready"/, 30_000, 'server-side daemon'),
        outs[1]?.waitFor(/"msg":"ready"/, 30_000, 'client-side daemon'),
      ])
      meshPids = [client.pid ?? -1, server.pid ?? -1]
      configs.push({
        name: 'builtin',
        endpoints: { echo: '127.0.0.1:19010', source: '127.0.0.1:19011' },
        node: 'cli',
        sides: () => meshPids.map((p) => [p]),
      })
    }
    if (want('envoy')) {
      // Same configuration as builtin, in its own two pods with their own backend.
      const backendE = topo.spawn('esrv', NODE, [join(HERE, 'backend.js'), JSON.stringify({ echo: [MESH_APP.echo], source: [MESH_APP.source] })])
      await collect(backendE).waitFor(new RegExp(`"listening":${MESH_APP.source}`), 10_000, 'envoy backend')
      const egress = `echo#127.0.0.1:19010#${ENVOY_SERVER_NAME}:${MESH_APP.echo}##src#127.0.0.1:19011#${ENVOY_SERVER_NAME}:${MESH_APP.source}`
      const envoyArgs = (node: string): string[] => ['--dataplane', 'envoy', '--work-dir', join(lab.workDir, `envoy-${node}`)]
      const server = topo.spawn('esrv', NODE, [CLI, 'run', ...envoyArgs('esrv'), '--tls-dir', lab.pki.tlsDir('esrv')])
      const client = topo.spawn('ecli', NODE, [CLI, 'run', ...envoyArgs('ecli'), '--ingress', 'DISABLED', '--egress', egress, '--tls-dir', lab.pki.tlsDir('ecli')])
      meshChildren.push(server, client)
      const outs = [collect(client), collect(server)]
      meshOutput.push(...outs.map((o) => o.lines))
      await Promise.all(outs.map((o, i) => o.waitFor(/"msg":"ready"/, 30_000, `envoy ${i === 0 ? 'client' : 'server'}-side daemon`)))
      // Each side: the daemon and the Envoy it runs (the latest spawn, should it restart).
      const envoyPid = (lines: readonly string[]): number =>
        Number(/"pid":(\d+)/.exec(lines.filter((l) => l.includes('"msg":"envoy spawned"')).at(-1) ?? '')?.[1] ?? -1)
      configs.push({
        name: 'envoy',
        endpoints: { echo: '127.0.0.1:19010', source: '127.0.0.1:19011' },
        node: 'ecli',
        sides: () => [
          [client.pid ?? -1, envoyPid(outs[0]?.lines ?? [])],
          [server.pid ?? -1, envoyPid(outs[1]?.lines ?? [])],
        ],
      })
    }
    for (const peer of ['haproxy', 'stunnel'] as const) {
      if (!want(peer)) continue
      const base = peer === 'haproxy' ? 29000 : 39000
      const wire = peer === 'haproxy' ? 9020 : 9030
      const routes: PeerRoute[] = [
        { name: 'echo', listen: base + 20, wire, app: APP.echo },
        { name: 'source', listen: base + 21, wire: wire + 1, app: APP.source },
        { name: 'echofull', listen: base + 22, wire, app: APP.echo, noResume: true },
      ]
      const side = async (node: string): Promise<PeerSide> => ({ files: await files(node), routes, serverIp: srv.ipv4, serverName: SERVER_NAME })
      const cfgC = join(lab.workDir, `${peer}-client.cfg`)
      const cfgS = join(lab.workDir, `${peer}-server.cfg`)
      await writeFile(cfgC, peer === 'haproxy' ? haproxyClient(await side('cli')) : stunnelClient(await side('cli')))
      await writeFile(cfgS, peer === 'haproxy' ? haproxyServer(await side('srv')) : stunnelServer(await side('srv')))
      const cmd = peer === 'haproxy' ? 'haproxy' : 'stunnel4'
      const args = (cfg: string): string[] => (peer === 'haproxy' ? ['-db', '-f', cfg] : [cfg])
      const server = topo.spawn('srv', cmd, args(cfgS))
      const client = topo.spawn('cli', cmd, args(cfgC))
      const outs = [collect(server), collect(client)]
      const pids = [client.pid ?? -1, server.pid ?? -1]
      configs.push({
        name: peer,
        endpoints: { echo: `127.0.0.1:${base + 20}`, source: `127.0.0.1:${base + 21}`, echoFull: `127.0.0.1:${base + 22}` },
        node: 'cli',
        sides: () => pids.map((p) => [p]),
        diag: () => outs.map((o) => o.lines.slice(-8).join('\n')).join('\n--\n'),
      })
    }

    const loadgen = async (spec: LoadSpec, node = 'cli'): Promise<LoadResult & { error?: string }> => {
      const r = await topo.exec(node, NODE, [join(HERE, 'loadgen.js'), JSON.stringify(spec)], { timeoutMs: spec.durationMs + 30_000 })
      const line = r.stdout.trim().split('\n').pop() ?? ''
      try {
        return JSON.parse(line) as LoadResult & { error?: string }
      } catch {
        throw new Error(`loadgen printed no result (exit ${r.code}): ${r.stderr.trim()}`)
      }
    }

    // Readiness and warm-up: a short exchange through every configuration.
    for (const c of configs) {
      let ok = false
      for (let i = 0; i < 20 && !ok; i++) {
        const { host, port } = hostPort(c.endpoints.echo)
        const r = await loadgen({ kind: 'rr', host, port, durationMs: 200, warmupMs: 50, size: 1024 }, c.node)
        ok = r.error === undefined && r.kind === 'rr' && r.requests > 10
        if (!ok) await new Promise((res) => setTimeout(res, 250))
      }
      if (!ok) throw new Error(`${c.name}: no echo through ${c.endpoints.echo}\n${c.diag?.() ?? ''}`)
      log(`${c.name} ready (${c.endpoints.echo})`)
    }

    const runs: (ConfigRun & { reps: Partial<Record<Workload, Sample>>[]; rssIdle: number[][] })[] = configs.map((c) => ({
      config: c.name,
      reps: [],
      rssIdle: [],
    }))
    const startup: { readyMs: number[]; rssFresh: number[] } = { readyMs: [], rssFresh: [] }
    const ms = SECONDS * 1000

    const specFor = (c: Config, w: Workload): LoadSpec | undefined => {
      const echo = hostPort(c.endpoints.echo)
      const source = hostPort(c.endpoints.source)
      switch (w) {
        case 'rr1000':
          return { kind: 'rr', ...echo, durationMs: ms, warmupMs: WARMUP_MS, size: 1024, rate: 1000 }
        case 'rrmax':
          return { kind: 'rr', ...echo, durationMs: ms, warmupMs: WARMUP_MS, size: 1024 }
        case 'bulk1':
          return { kind: 'bulk', ...source, durationMs: ms, warmupMs: WARMUP_MS, connections: 1 }
        case 'bulk8':
          return { kind: 'bulk', ...source, durationMs: ms, warmupMs: WARMUP_MS, connections: 8 }
        case 'cps':
          return { kind: 'cps', ...echo, durationMs: ms, size: 1024, concurrency: CPS_CONCURRENCY }
        case 'cpsFull':
          return c.endpoints.echoFull === undefined ? undefined : { kind: 'cps', ...hostPort(c.endpoints.echoFull), durationMs: ms, size: 1024, concurrency: CPS_CONCURRENCY }
      }
    }

    for (let rep = 0; rep < REPS; rep++) {
      const order = configs.map((_, i) => configs[(i + rep) % configs.length] as Config)
      log(`repetition ${rep + 1}/${REPS}: ${order.map((c) => c.name).join(' → ')}`)
      for (const [i, c] of configs.entries()) {
        runs[i]?.rssIdle.push(await Promise.all(c.sides().map(sideRss)))
        runs[i]?.reps.push({})
      }
      for (const w of WORKLOADS) {
        if (ONLY_WORKLOADS !== undefined && !ONLY_WORKLOADS.includes(w)) continue
        for (const c of order) {
          const spec = specFor(c, w)
          if (spec === undefined) continue
          const sides = c.sides()
          const pids = sides.flat()
          const peaks = sides.map(() => 0)
          const sampler = setInterval(() => {
            sides.forEach((side, k) => void sideRss(side).then((b) => (peaks[k] = Math.max(peaks[k] ?? 0, b)), () => {}))
          }, 100)
          const cpu0 = pids.length > 0 ? await totalCpu(pids) : undefined
          const r = await loadgen(spec, c.node)
          const cpu1 = pids.length > 0 ? await totalCpu(pids) : undefined
          clearInterval(sampler)
          if (r.error !== undefined) {
            log(`  ${c.name} ${w}: ${r.error}`)
            continue
          }
          if (r.errors > 0) log(`  ${c.name} ${w}: ${r.errors} failed${r.kind === 'cps' ? ` ${JSON.stringify(r.errorKinds)}` : ''}`)
          const s: Sample =
            r.kind === 'bulk'
              ? { units: r.bytes, seconds: r.seconds, errors: r.errors }
              : {
                  units: r.kind === 'rr' ? r.requests : r.connections,
                  seconds: r.seconds,
                  errors: r.errors,
                  ...(r.latencyUs.p50 !== undefined ? { p50: r.latencyUs.p50 } : {}),
                  ...(r.latencyUs.p90 !== undefined ? { p90: r.latencyUs.p90 } : {}),
                  ...(r.latencyUs.p99 !== undefined ? { p99: r.latencyUs.p99 } : {}),
                }
          const idx = configs.indexOf(c)
          const rec = runs[idx]?.reps[rep]
          if (rec !== undefined) rec[w] = { ...s, ...(cpu0 !== undefined && cpu1 !== undefined ? { cpuSeconds: cpu1 - cpu0, rssPeak: peaks } : {}) }
        }
      }
      if (want('builtin')) {
        // Startup: a fresh daemon in its own pod, certificates from files.
        const t0 = performance.now()
        const d = topo.spawn('boot', NODE, [CLI, 'run', '--dataplane', 'builtin', '--ingress', 'DISABLED', '--egress', `e#127.0.0.1:19010#${SERVER_NAME}:${MESH_APP.echo}`, '--tls-dir', lab.pki.tlsDir('boot')])
        const out = collect(d)
        await out.waitFor(/"msg":"ready"/, 30_000, 'boot daemon')
        startup.readyMs.push(performance.now() - t0)
        startup.rssFresh.push(await rssBytes(d.pid ?? -1))
        d.kill('SIGTERM')
        await new Promise((res) => (d.exitCode !== null ? res(undefined) : d.once('exit', res)))
      }
      const done = runs.map((r) => r.config).join(', ')
      log(`repetition ${rep + 1} done (${done})`)
    }

    const allRuns: ConfigRun[] = [
      ...runs,
      ...Object.entries(skipped)
        .filter(([c]) => ONLY === undefined || ONLY.includes(c))
        .map(([config, why]) => ({ config, skipped: why, reps: [], rssIdle: [] })),
    ]
    const setup: Setup = {
      node: process.versions.node,
      openssl: process.versions.openssl,
      kernel: release(),
      cores: cpus().length,
      cpu: cpus()[0]?.model.trim() ?? 'unknown',
      ...(firstLine('haproxy', ['-v']) !== undefined ? { haproxy: /version (\S+)/.exec(firstLine('haproxy', ['-v']) ?? '')?.[1] ?? '?' } : {}),
      ...(firstLine('stunnel4', ['-version']) !== undefined
        ? { stunnel: /stunnel (\S+)/.exec(spawnSync('stunnel4', ['-version']).stderr?.toString() ?? '')?.[1] ?? '?' }
        : {}),
      repetitions: REPS,
      secondsPerRun: SECONDS,
      cpsConcurrency: CPS_CONCURRENCY,
      date: new Date().toISOString().slice(0, 10),
    }
    const summary = summarize(allRuns)
    const st: Startup = startup
    await mkdir(RESULTS, { recursive: true })
    await writeFile(join(RESULTS, 'latest.json'), `${JSON.stringify({ setup, summary, startup: st, runs: allRuns }, null, 1)}\n`)
    const md = renderMarkdown(summary, allRuns, setup, st)
    await writeFile(join(RESULTS, 'latest.md'), md)
    process.stdout.write(md)
    // A clean stop, so profiles (BENCH_DAEMON_NODE_ARGS) are written before the namespaces go.
    await Promise.all(
      meshChildren.map(
        (c) =>
          new Promise<void>((res) => {
            if (c.exitCode !== null || c.signalCode !== null) return res()
            const t = setTimeout(res, 10_000)
            c.once('exit', () => (clearTimeout(t), res()))
            c.kill('SIGTERM')
          }),
      ),
    )
    if (process.env['BENCH_DEBUG'] === '1') {
      // Failures and warnings from all of each daemon's output, then its last lines.
      for (const lines of meshOutput) {
        const notable = lines.filter((l) => /"level":(40|50|60)|connection failed/.test(l))
        process.stderr.write(`--- daemon output\n${[...notable.slice(-40), '...', ...lines.slice(-10)].join('\n')}\n`)
      }
      for (const n of ['cli', 'srv']) {
        const m = await topo.exec(n, 'curl', ['-s', 'http://127.0.0.1:15020/metrics'])
        process.stderr.write(`--- ${n} metrics\n${m.stdout.split('\n').filter((l) => /connections|handshakes|failures/.test(l) && !l.startsWith('#')).join('\n')}\n`)
      }
    }
  } finally {
    await lab.destroy()
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    process.exit(1)
  },
)
