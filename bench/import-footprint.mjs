#!/usr/bin/env node
// What importing one module costs: the modules it loads and the process RSS after
// import. Run it on the built code, one fresh process per module:
//
//   node --expose-gc bench/import-footprint.mjs dist/cli/run.js [more modules...]
//
// prints one JSON line per module: { module, own, packages, builtins, rssMB, files }.
// `own` counts this repository's modules, `packages` files under node_modules (ESM
// through the loader hooks, CommonJS through require.cache), `builtins` node: modules.
// RSS is measured in separate fresh processes without the hooks (their thread costs
// memory): after a full GC, the median of 5; on a shared machine it still varies by a
// few MB between invocations, so compare figures taken in one invocation.
// test/cli/footprint.test.ts uses the file lists to keep heavy modules out of `run`.

import { spawnSync } from 'node:child_process'
import { MessageChannel } from 'node:worker_threads'
import { createRequire, register } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { resolve, relative } from 'node:path'

const HOOKS = `
let port
export function initialize(data) { port = data.port }
export async function load(url, context, next) {
  port.postMessage(url)
  return next(url, context)
}
`

if (process.env.IMPORT_FOOTPRINT_CHILD === undefined) {
  const modules = process.argv.slice(2)
  if (modules.length === 0) {
    process.stderr.write('usage: node bench/import-footprint.mjs <module.js>...\n')
    process.exit(2)
  }
  const child = (mode, m) => {
    const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), m], {
      env: { ...process.env, IMPORT_FOOTPRINT_CHILD: mode },
      encoding: 'utf8',
    })
    if (r.status !== 0) {
      process.stderr.write(r.stderr)
      process.exit(r.status ?? 1)
    }
    return JSON.parse(r.stdout)
  }
  const reps = Number(process.env.IMPORT_FOOTPRINT_REPS ?? 5)
  for (const m of modules) {
    const result = child('modules', m)
    const rss = Array.from({ length: reps }, () => child('rss', m).rssMB).sort((a, b) => a - b)
    result.rssMB = rss[Math.floor(rss.length / 2)]
    process.stdout.write(JSON.stringify(result) + '\n')
  }
} else if (process.env.IMPORT_FOOTPRINT_CHILD === 'rss') {
  await import(pathToFileURL(resolve(process.argv[2])).href)
  globalThis.gc?.()
  process.stdout.write(JSON.stringify({ rssMB: +(process.memoryUsage().rss / 2 ** 20).toFixed(1) }) + '\n')
} else {
  const target = resolve(process.argv[2])
  const root = process.cwd()
  const seen = new Set()
  const { port1, port2 } = new MessageChannel()
  port1.on('message', (url) => seen.add(url))
  port1.unref()
  register(`data:text/javascript,${encodeURIComponent(HOOKS)}`, {
    data: { port: port2 },
    transferList: [port2],
  })
  await import(pathToFileURL(target).href)
  // let the hook thread's last messages arrive
  await new Promise((r) => setTimeout(r, 50))
  const require = createRequire(import.meta.url)
  for (const f of Object.keys(require.cache)) seen.add(pathToFileURL(f).href)
  const files = [...seen]
    .filter((u) => u !== import.meta.url && !u.startsWith('data:'))
    .map((u) => (u.startsWith('file:') ? relative(root, fileURLToPath(u)) : u))
    .sort()
  const builtins = files.filter((f) => f.startsWith('node:')).length
  const packages = files.filter((f) => f.includes('node_modules/')).length
  const own = files.length - builtins - packages
  process.stdout.write(
    JSON.stringify({ module: relative(root, target), own, packages, builtins, files }) + '\n',
  )
}
