// The shape of src/: data and control flow one way, commands on top. A new import
// that closes a cycle or reaches upward fails here, naming the modules.

import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { componentOf, cycles, importGraph } from './import-graph.js'

const graph = importGraph(join(import.meta.dirname, '..', '..', 'src'))

/** Every import edge from a module of `from` to a module of `to`, as `a -> b`. */
function edges(from: (c: string) => boolean, to: (c: string) => boolean): string[] {
  return [...graph].flatMap(([m, es]) => (from(componentOf(m)) ? es.filter((e) => to(componentOf(e)) && componentOf(e) !== componentOf(m)).map((e) => `${m} -> ${e}`) : []))
}

describe('the import graph of src/', () => {
  it('reads the modules and their imports', () => {
    expect(graph.get('cli/check.ts')).toEqual(['cli/command.ts', 'config/args.ts'])
    expect(graph.get('cli.ts')).toContain('cli/run.ts') // lazily, with import()
    expect(graph.get('cli/run.ts')).toContain('agent/attested-certs.ts') // import type and import()
  })

  it('has no cycles', () => {
    expect(cycles(graph)).toEqual([])
  })

  it('has commands on top: no component imports cli/ or cli.ts', () => {
    expect(edges((c) => c !== 'cli' && c !== 'cli.ts', (c) => c === 'cli' || c === 'cli.ts')).toEqual([])
  })

  it('keeps the mesh API between agent and coordinator: meshapi uses neither, neither uses the other', () => {
    expect(edges((c) => c === 'meshapi', (c) => c === 'agent' || c === 'coordinator')).toEqual([])
    expect(edges((c) => c === 'agent', (c) => c === 'coordinator')).toEqual([])
    expect(edges((c) => c === 'coordinator', (c) => c === 'agent')).toEqual([])
  })

  it('has leaf modules for errors, logging, timers, the LRU, the executable check and the log rate limit', () => {
    for (const leaf of ['errors.ts', 'logger.ts', 'timers.ts', 'lru.ts', 'executable.ts', 'log-limit.ts']) expect(graph.get(leaf), leaf).toEqual([])
  })
})
