// `podvm-mesh check`: validate a mesh config (flags, --file, or env) and print it
// normalized, so an operator can see exactly what the daemon would enforce.

import type { Command } from '../cli.js'
import { CONFIG_USAGE, configFromArgs } from './args.js'
import { ConfigError, formatIssue } from './errors.js'

const USAGE = `usage: podvm-mesh check [config flags | --file F]

Validates the mesh configuration and prints it normalized as JSON (exit 0),
or prints every problem, one per line, to stderr (exit 2).

${CONFIG_USAGE}`

export const checkCommand: Command = async (argv, io) => {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(USAGE)
    return 0
  }
  try {
    const { config } = configFromArgs(argv, io.env)
    io.stdout.write(`${JSON.stringify(config, null, 2)}\n`)
    return 0
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    const head = err.details['file'] !== undefined ? `podvm-mesh check: ${String(err.details['file'])}:` : 'podvm-mesh check:'
    io.stderr.write(`${head} ${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}\n`)
    for (const issue of err.issues) io.stderr.write(`${formatIssue(issue)}\n`)
    return 2
  }
}
