// `podvm-mesh teardown`: the only way to remove the mesh's rules and routes entirely
// (tests and the demo). A stopping daemon goes back to the closed baseline instead.

import type { CommandIo } from '../cli.js'
import { execRunner, removeAll } from '../netfilter/index.js'

export async function teardownCommand(argv: string[], io: CommandIo): Promise<number> {
  if (argv.length > 0) {
    io.stderr.write(`usage: podvm-mesh teardown   (takes no arguments, got ${argv.join(' ')})\n`)
    return 2
  }
  await removeAll(execRunner)
  io.stdout.write('podvm-mesh: nftables table and policy routes removed\n')
  return 0
}
