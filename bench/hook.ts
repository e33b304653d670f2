// `npm run bench:hook` (as root, needs runc): how long the guest prestart hook holds
// kata-agent's sandbox lock. Runs, interleaved per repetition:
//   node-start   `node -e 0` with an empty environment: the floor for any Node hook
//   pause        the hook for a pause container (parse the state, skip)
//   workload     the hook for a container under runc while the mesh is ready: hold the
//                init process, read the status, clone + bind both directories
//   runc-bare / runc-hook   a whole `runc run` of `true` without and with the hook
// Every hook run is timed around the hook process alone (from the wrapper that the
// runtime starts). Medians and p90 of BENCH_HOOK_REPS (default 15) runs; results go to
// bench/results/hook.json.

import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import { buildLabRootfs, containersUnavailableReason, runContainer, writeBundle } from '../src/demo/index.js'
import { meshStatusWriter, writeTlsDir } from '../src/pki/index.js'
import { median, percentileSorted } from './stats.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const CLI = join(ROOT, 'dist', 'cli.js')
const REPS = Number(process.env['BENCH_HOOK_REPS'] ?? 15)

const why = containersUnavailableReason()
if (why !== undefined) {
  process.stderr.write(`bench/hook: ${why}\n`)
  process.exit(2)
}

const work = mkdtempSync(join(tmpdir(), 'pmhookbench-'))
try {
  const tlsDir = join(work, 'contrast', 'tls-config')
  const bundleRoot = join(work, 'bundles')
  const times = join(work, 'times')
  mkdirSync(bundleRoot)
  await writeTlsDir(tlsDir, { meshCa: 'ca\n', certChain: 'chain\n', key: 'key\n', rootCa: 'root\n' })
  await meshStatusWriter(tlsDir, pino({ level: 'silent' })).set({ state: 'ready' })
  // The wrapper the runtime starts; it times the hook process (date's own cost: ~1 ms).
  const hook = join(work, 'podvm-mesh-certs')
  writeFileSync(
    hook,
    `#!/bin/sh\nt0=$(date +%s%N)\n${process.execPath} ${CLI} hook "$@" --tls-dir ${tlsDir} --bundle-root ${bundleRoot} >/dev/null 2>&1\nt1=$(date +%s%N)\necho $(( (t1 - t0) / 1000 )) >> ${times}\n`,
    { mode: 0o755 },
  )
  const rootfs = join(work, 'rootfs')
  buildLabRootfs(rootfs, ['true'])
  const lastTime = (): number => Number(readFileSync(times, 'utf8').trim().split('\n').at(-1)) / 1000

  const samples: Record<string, number[]> = { 'node-start': [], pause: [], workload: [], 'runc-bare': [], 'runc-hook': [] }
  for (let i = 0; i < REPS; i++) {
    let t0 = performance.now()
    spawnSync(process.execPath, ['-e', '0'], { env: {} })
    samples['node-start']!.push(performance.now() - t0)

    const id = `pause${i}`
    const state = JSON.stringify({ ociVersion: '1.0.2', id, status: 'created', pid: process.pid, bundle: join(bundleRoot, id), annotations: { 'io.kubernetes.cri.container-type': 'sandbox' } })
    spawnSync(hook, ['podvm-mesh-certs', 'prestart'], { input: state, env: {} })
    samples['pause']!.push(lastTime())

    const bare = writeBundle({ id: `pmhb-bare${i}`, bundleRoot, rootfs, args: ['/bin/true'] })
    t0 = performance.now()
    await runContainer(bare, `pmhb-bare${i}`)
    samples['runc-bare']!.push(performance.now() - t0)

    const hooked = writeBundle({ id: `pmhb-hook${i}`, bundleRoot, rootfs, args: ['/bin/true'], hook })
    t0 = performance.now()
    const r = await runContainer(hooked, `pmhb-hook${i}`)
    samples['runc-hook']!.push(performance.now() - t0)
    if (r.code !== 0) throw new Error(`runc run with the hook failed: ${r.stderr}`)
    samples['workload']!.push(lastTime())
  }

  const rows = Object.entries(samples).map(([name, v]) => {
    const sorted = [...v].sort((a, b) => a - b)
    return { name, runs: v.length, medianMs: round(median(v)!), p90Ms: round(percentileSorted(sorted, 90)!), minMs: round(sorted[0]!), maxMs: round(sorted.at(-1)!) }
  })
  const result = { node: process.version, reps: REPS, rows }
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
  writeFileSync(join(ROOT, 'bench', 'results', 'hook.json'), `${JSON.stringify(result, null, 2)}\n`)
  process.stdout.write(`| run | median ms | p90 ms | min | max |\n|---|---:|---:|---:|---:|\n`)
  for (const r of rows) process.stdout.write(`| ${r.name} | ${r.medianMs} | ${r.p90Ms} | ${r.minMs} | ${r.maxMs} |\n`)
} finally {
  rmSync(work, { recursive: true, force: true })
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}
