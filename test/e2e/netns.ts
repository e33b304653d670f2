// The end-to-end tests' view of the namespace topology (src/demo/topology.ts), plus the
// rule for tests that need root: under CI=true a missing capability fails the suite,
// elsewhere the suite is skipped with the reason in its title.
//
//   const describeNetns = requireNetns()
//   describeNetns('my suite', () => { ... createTopology({ prefix: 'pmxx', nodes: ['c', 'b'] }) ... })

import { describe } from 'vitest'
import { netnsUnavailableReason, type Topology } from '../../src/demo/index.js'

export { cleanupStale, createTopology, netnsExec, netnsUnavailableReason, run, waitFor } from '../../src/demo/index.js'
export type { ExecOptions, ExecResult, NetnsNode, Topology, TopologyOptions } from '../../src/demo/index.js'

/**
 * `describe` when network namespaces are usable; otherwise `describe.skip` with the
 * reason in the title, or, under CI=true, an error (the suite must not silently skip).
 */
export function requireNetns(): typeof describe {
  const reason = netnsUnavailableReason()
  if (reason === undefined) return describe
  if (process.env.CI === 'true') throw new Error(`network-namespace tests are required under CI=true: ${reason}`)
  const skipped = ((name: string, fn?: () => void) => describe.skip(`${name} (skipped: ${reason})`, fn)) as unknown as typeof describe
  return skipped
}

/**
 * The packet counter of the rule with this comment in the node's podvm_mesh table
 * (NaN when there is no such rule): how a test sees that packets arrived and were dropped.
 */
export async function nftCounter(topology: Topology, node: string, comment: string): Promise<number> {
  const r = await topology.exec(node, 'nft', ['list', 'table', 'inet', 'podvm_mesh'])
  const line = r.stdout.split('\n').find((l) => l.includes(`comment "${comment}"`))
  return Number(/counter packets (\d+)/.exec(line ?? '')?.[1] ?? NaN)
}
