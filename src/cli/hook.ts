// `podvm-mesh hook prestart`: the Kata guest OCI hook (prestart.ts). The image's hook
// file runs it with an empty environment and the OCI state on stdin; every setting has
// a fixed default, the flags exist for tests and other layouts.

import { parseArgs } from 'node:util'
import { HOOK_DEADLINE_MS, KATA_BUNDLE_ROOT, realDeps, runPrestart } from '../hook/index.js'
// pki/store.js, not the barrel: the hook runs per container while kata-agent holds its
// sandbox lock, and the barrel loads the certificate builders too (bench/hook.ts).
import { DEFAULT_TLS_DIR } from '../pki/store.js'
import { command, UsageError, type CommandIo } from './command.js'

const USAGE = `usage: podvm-mesh hook prestart [--tls-dir DIR] [--bundle-root DIR] [--wait-ms MS] < state.json
  the Kata guest OCI prestart hook: makes the mesh certificates visible read-only at
  /contrast/tls-config and /contrast/secrets in each container; waits for the mesh
  status (<dirname of --tls-dir>/mesh-status); stops the container when the mesh failed
  --tls-dir DIR      the daemon's certificate directory (default ${DEFAULT_TLS_DIR})
  --bundle-root DIR  where bundles are: <DIR>/<id> (default ${KATA_BUNDLE_ROOT})
  --wait-ms MS       wait at most this long after start for the mesh (default ${HOOK_DEADLINE_MS})
`

export const hookCommand = command({ name: 'hook', usage: USAGE, run: hook })

async function hook(argv: string[], io: CommandIo & { stdin?: NodeJS.ReadableStream }): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { 'tls-dir': { type: 'string' }, 'bundle-root': { type: 'string' }, 'wait-ms': { type: 'string' } },
    })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const phase = parsed.positionals[0]
  if (phase !== 'prestart' || parsed.positionals.length !== 1) {
    throw new UsageError(`expected the phase "prestart" as the one argument, got ${JSON.stringify(parsed.positionals)}`)
  }
  const waitMs = parsed.values['wait-ms'] === undefined ? HOOK_DEADLINE_MS : Number(parsed.values['wait-ms'])
  if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > 9_000) {
    throw new UsageError(`--wait-ms ${parsed.values['wait-ms']}: expected an integer 0..9000 (the agent kills the hook at 10 s)`)
  }
  const stdin = await readAll(io.stdin ?? process.stdin)
  const line = (stream: NodeJS.WritableStream) => (text: string) => stream.write(`podvm-mesh hook: ${text}\n`)
  const result = await runPrestart(
    stdin,
    {
      tlsDir: parsed.values['tls-dir'] ?? DEFAULT_TLS_DIR,
      bundleRoot: parsed.values['bundle-root'] ?? KATA_BUNDLE_ROOT,
      // performance.now() counts from the process start: Node's own start-up is included.
      deadline: waitMs,
    },
    await realDeps(),
    { info: line(io.stdout), error: line(io.stderr) },
  )
  return result.exitCode
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer)
    size += b.length
    // parseHookState refuses anything this large; stop reading rather than buffer more.
    if (size > 2 << 20) break
    chunks.push(b)
  }
  return Buffer.concat(chunks).toString('utf8')
}
