// `podvm-mesh teardown`: the only way to remove the mesh's rules and routes entirely
// (tests and the demo). A stopping daemon goes back to the closed baseline instead.

import { execRunner, removeAll } from '../netfilter/index.js'
import { command, UsageError } from './command.js'

export const teardownCommand = command({
  name: 'teardown',
  usage: 'usage: podvm-mesh teardown   (takes no arguments)\n',
  run: async (argv, io) => {
    if (argv.length > 0) throw new UsageError(`takes no arguments, got ${argv.join(' ')}`)
    await removeAll(execRunner)
    io.stdout.write('podvm-mesh: nftables table and policy routes removed\n')
    return 0
  },
})
