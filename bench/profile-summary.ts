// Prints where a V8 CPU profile (node --cpu-prof) spent its samples: self time by
// function and by file, top N. `node bench/.build/bench/profile-summary.js FILE [N]`

import { readFileSync } from 'node:fs'

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: readonly number[]
}

interface Profile {
  readonly nodes: readonly ProfileNode[]
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

const [file, topArg] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write('usage: profile-summary FILE.cpuprofile [N]\n')
  process.exit(2)
}
const top = Number(topArg ?? 25)
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const selfUs = new Map<number, number>()
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
const total = [...selfUs.values()].reduce((a, b) => a + b, 0)

const group = (key: (n: ProfileNode) => string): [string, number][] => {
  const m = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const n = byId.get(id)
    if (n === undefined) continue
    const k = key(n)
    m.set(k, (m.get(k) ?? 0) + us)
  }
  return [...m].sort((a, b) => b[1] - a[1]).slice(0, top)
}
const short = (url: string): string => url.replace(/^.*\/node_modules\//, 'npm:').replace(/^file:\/\/.*\/dist\//, 'dist/')
const print = (title: string, rows: [string, number][]): void => {
  process.stdout.write(`\n${title} (total ${(total / 1000).toFixed(0)} ms)\n`)
  for (const [k, us] of rows) process.stdout.write(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(1).padStart(8)} ms  ${k}\n`)
}
print('self time by function', group((n) => `${n.callFrame.functionName || '(anonymous)'} ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`))
print('self time by file', group((n) => short(n.callFrame.url) || `(${n.callFrame.functionName})`))
