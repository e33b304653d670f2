// `podvm-mesh render nft`: prints what `run` would apply, in the order it applies it:
// the `ip` commands, then the nft script. With --baseline there are no routes, so the
// output is exactly the boot-time nft file (what the guest image installs).

import { CONFIG_USAGE, configFromArgs } from '../config/index.js'
import { formatRouteCommand, renderBaseline, renderFinal, type Ruleset } from '../netfilter/index.js'
import { command, UsageError } from './command.js'

const USAGE = `usage: podvm-mesh render nft [--boot] [config flags | --file F]
       podvm-mesh render nft --baseline

Prints the policy-routing commands (one \`ip ...\` line each) and then the nftables
script that \`run\` applies for this config once ready, as one atomic \`nft -f\`.
--boot prints what \`run\` installs first for this config, while it waits for
certificates (the baseline, plus the egress capture when transparent egress is on).
--baseline prints the image's fail-closed boot ruleset (it takes no config).

${CONFIG_USAGE}`

export const renderNftCommand = command({
  name: 'render nft',
  usage: USAGE,
  run: async (argv, io) => {
    let ruleset: Ruleset
    if (argv.includes('--baseline')) {
      // The baseline does not depend on the config; a broken config must not stop it.
      if (argv.length > 1) throw new UsageError(`--baseline takes no other argument (got ${argv.filter((a) => a !== '--baseline').join(' ')})`)
      ruleset = renderBaseline()
    } else {
      const boot = argv.includes('--boot')
      const config = configFromArgs(
        argv.filter((a) => a !== '--boot'),
        io.env,
      ).config
      ruleset = boot ? renderBaseline(config) : renderFinal(config)
    }
    const routes = ruleset.routes.map((r) => `${formatRouteCommand(r)}\n`).join('')
    io.stdout.write(routes + ruleset.nft)
    return 0
  },
})
