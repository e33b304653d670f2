// `podvm-mesh check`: validate a mesh config (flags, --file, or env) and print it
// normalized, so an operator can see exactly what the daemon would enforce.

// config/args.js, not the barrel: `check` should not load initdata handling (zlib, TOML documents).
import { CONFIG_USAGE, configFromArgs } from '../config/args.js'
import { command } from './command.js'

const USAGE = `usage: podvm-mesh check [config flags | --file F]

Validates the mesh configuration and prints it normalized as JSON (exit 0),
or prints every problem, one per line, to stderr (exit 2).

${CONFIG_USAGE}`

export const checkCommand = command({
  name: 'check',
  usage: USAGE,
  run: async (argv, io) => {
    const { config } = configFromArgs(argv, io.env)
    io.stdout.write(`${JSON.stringify(config, null, 2)}\n`)
    return 0
  },
})
