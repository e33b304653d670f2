// The streams a command test hands a command, and what the command wrote to them as text.
import { Readable, Writable } from 'node:stream'
import type { CommandIo } from '../../src/cli.js'

export interface CapturedIo extends CommandIo {
  /** Standard input, for the commands that read it (the guest hook reads its state there). */
  readonly stdin?: NodeJS.ReadableStream
  out(): string
  err(): string
}

export function capturedIo(opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): CapturedIo {
  let out = ''
  let err = ''
  const sink = (append: (s: string) => void): Writable =>
    new Writable({
      write(chunk, _enc, cb) {
        append(String(chunk))
        cb()
      },
    })
  return {
    stdout: sink((s) => (out += s)),
    stderr: sink((s) => (err += s)),
    env: opts.env ?? {},
    ...(opts.stdin !== undefined ? { stdin: Readable.from([opts.stdin]) } : {}),
    out: () => out,
    err: () => err,
  }
}
