// The import graph of src/ as a reader sees it: every `import`/`export … from`,
// `import type` and dynamic `import()` is an edge. A type-only or lazy import loads
// nothing more at run time, but it ties the two modules together all the same, so a
// cycle through one is still a cycle. (What a command loads at run time is
// test/cli/footprint.test.ts's business.)

import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

export type Graph = ReadonlyMap<string, readonly string[]>

const IMPORT = /^\s*(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  )
}

/** Module → the modules it imports, as paths relative to `root` (`cli/run.ts`). */
export function importGraph(root: string): Graph {
  const graph = new Map<string, string[]>()
  for (const file of files(root)) {
    const text = readFileSync(file, 'utf8')
    const edges: string[] = []
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3]!
      if (!spec.startsWith('.')) continue
      edges.push(relative(root, resolve(dirname(file), spec.replace(/\.js$/, '.ts'))))
    }
    graph.set(relative(root, file), [...new Set(edges)].sort())
  }
  return graph
}

/** Strongly connected components with more than one module (or a self-import): the cycles. */
export function cycles(graph: Graph): string[][] {
  let index = 0
  const idx = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const on = new Set<string>()
  const out: string[][] = []
  const visit = (v: string): void => {
    idx.set(v, index)
    low.set(v, index++)
    stack.push(v)
    on.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!))
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = []
      let w: string
      do {
        w = stack.pop()!
        on.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort())
    }
  }
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v)
  return out
}

/** The top-level directory of a module (`cli`, `meshapi`), or the file itself at the top. */
export function componentOf(module: string): string {
  const i = module.indexOf('/')
  return i < 0 ? module : module.slice(0, i)
}
