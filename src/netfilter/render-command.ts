// `podvm-mesh render nft`: prints what `run` would apply, in the order it applies it:
// the `ip` commands, then the nft script. With --baseline there are no routes, so the
// output is exactly the boot-time nft file (what the guest image installs).

import type { Command } from '../cli.js'
import { CONFIG_USAGE, ConfigError, configFromArgs, formatIssue } from '../config/index.js'
import { NetfilterError } from './errors.js'
import { formatRouteCommand, renderBaseline, renderFinal, type Ruleset } from './render.js'

const USAGE = `usage: podvm-mesh render nft [--boot] [config flags | --file F]
       podvm-mesh render nft --baseline

Prints the policy-routing commands (one \`ip ...\` line each) and then the nftables
script that \`run\` applies for this config once ready, as one atomic \`nft -f\`.
--boot prints what \`run\` installs first for this config, while it waits for
certificates (the baseline, plus the egress capture when transparent egress is on).
--baseline prints the image's fail-closed boot ruleset (it takes no config).

${CONFIG_USAGE}`

export const renderNftCommand: Command = async (argv, io) => {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(USAGE)
    return 0
  }
  let ruleset: Ruleset
  if (argv.includes('--baseline')) {
    // The baseline does not depend on the config; a broken config must not stop it.
    if (argv.length > 1) {
      io.stderr.write(`podvm-mesh render nft: --baseline takes no other argument (got ${argv.filter((a) => a !== '--baseline').join(' ')})\n`)
      return 2
    }
    ruleset = renderBaseline()
  } else {
    try {
      const boot = argv.includes('--boot')
      const config = configFromArgs(
        argv.filter((a) => a !== '--boot'),
        io.env,
      ).config
      ruleset = boot ? renderBaseline(config) : renderFinal(config)
    } catch (err) {
      if (err instanceof ConfigError) {
        io.stderr.write(`podvm-mesh render nft: ${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}\n`)
        for (const issue of err.issues) io.stderr.write(`${formatIssue(issue)}\n`)
        return 2
      }
      if (err instanceof NetfilterError) {
        io.stderr.write(`podvm-mesh render nft: ${err.code}: ${err.message}\n`)
        return 2
      }
      throw err
    }
  }
  const routes = ruleset.routes.map((r) => `${formatRouteCommand(r)}\n`).join('')
  io.stdout.write(routes + ruleset.nft)
  return 0
}
