// What every command shares: its I/O, and the one place that turns an error into
// output and an exit code. Exit codes: 0 done; 1 a negative answer (evidence not
// verified, an update refused, a daemon that failed after it started); 2 unusable
// input — every config problem listed, or one typed error as `CODE: message`.

// config/errors.js, not the barrel: every command loads this file, `check` nothing more of config than it needs.
import { formatIssue, isConfigError } from '../config/errors.js'
import { isMeshError, MeshError } from '../errors.js'

export interface CommandIo {
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream
  readonly env: NodeJS.ProcessEnv
}

export type Command = (argv: string[], io: CommandIo) => Promise<number>

export const EXIT_OK = 0
export const EXIT_NEGATIVE = 1
export const EXIT_UNUSABLE = 2

/** The command line itself is wrong: printed with the command's usage, exit 2. */
export class UsageError extends MeshError<'CLI_USAGE'> {
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}) {
    super('CLI_USAGE', message, details)
  }
}

export interface CommandSpec {
  /** How the command is typed: `check`, `render nft`. */
  readonly name: string
  readonly usage: string
  readonly run: Command
}

/**
 * A command with `--help`/`-h` and the error mapping done once. `run` returns its exit
 * code or throws; an error that is not one of ours is a bug and propagates.
 */
export function command(spec: CommandSpec): Command {
  return async (argv, io) => {
    if (argv.includes('--help') || argv.includes('-h')) {
      io.stdout.write(spec.usage)
      return EXIT_OK
    }
    try {
      return await spec.run(argv, io)
    } catch (err) {
      return reportError(spec, err, io)
    }
  }
}

function reportError(spec: CommandSpec, err: unknown, io: CommandIo): number {
  const head = `podvm-mesh ${spec.name}:`
  if (isConfigError(err)) {
    const file = err.details['file'] !== undefined ? ` ${String(err.details['file'])}:` : ''
    const n = err.issues.length
    io.stderr.write(`${head}${file} ${n} problem${n === 1 ? '' : 's'}\n${err.issues.map((i) => `${formatIssue(i)}\n`).join('')}`)
    return EXIT_UNUSABLE
  }
  if (isMeshError(err) && err.code === 'CLI_USAGE') {
    io.stderr.write(`${head} ${err.message}\n${spec.usage}`)
    return EXIT_UNUSABLE
  }
  if (isMeshError(err)) {
    io.stderr.write(`${head} ${err.code}: ${err.message}\n`)
    return EXIT_UNUSABLE
  }
  throw err
}
