#!/usr/bin/env node
// podvm-mesh command line (the package's bin). Each command is one file in cli/, on
// top of the components, and is only dispatched from here; exit codes (cli/command.ts):
// 0 ok, 1 a negative answer (e.g. evidence not verified), 2 unusable input.

import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import type { Command, CommandIo } from './cli/command.js'

export type { Command, CommandIo } from './cli/command.js'

interface CommandEntry {
  readonly summary: string
  readonly load: () => Promise<Command>
}

// Loaded lazily so `podvm-mesh check` does not pay for gRPC or koffi.
const COMMANDS: Record<string, CommandEntry> = {
  'evidence verify': { summary: 'verify SEV-SNP or TDX evidence', load: async () => (await import('./cli/evidence.js')).evidenceVerifyCommand },
  run: { summary: 'the in-guest mesh daemon', load: async () => (await import('./cli/run.js')).runCommand },
  teardown: { summary: 'remove the mesh rules and routes entirely', load: async () => (await import('./cli/teardown.js')).teardownCommand },
  coordinator: { summary: 'the attested mesh CA and its gRPC mesh API (set-manifest: sign an update)', load: async () => (await import('./cli/coordinator.js')).coordinatorCommand },
  demo: { summary: 'build a three-namespace mesh, show what it does, tear it down', load: async () => (await import('./cli/demo.js')).demoCommand },
  initdata: { summary: 'set the measured mesh config (initdata) on a Kubernetes manifest', load: async () => (await import('./cli/initdata.js')).initdataCommand },
  hook: { summary: 'the Kata guest OCI prestart hook: mesh certificates into each container', load: async () => (await import('./cli/hook.js')).hookCommand },
  check: { summary: 'validate a mesh config and print it normalized', load: async () => (await import('./cli/check.js')).checkCommand },
  'render nft': { summary: 'print the nftables ruleset and routes run would apply', load: async () => (await import('./cli/render-nft.js')).renderNftCommand },
  'render envoy': { summary: 'print the Envoy bootstrap for a mesh config', load: async () => (await import('./cli/render-envoy.js')).renderEnvoyCommand },
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(18)} ${c.summary}`)
  return `usage: podvm-mesh <command> [options]\n\ncommands:\n${lines.join('\n')}\n`
}

export async function main(argv: string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage())
    return name === undefined ? 2 : 0
  }
  // `render nft` / `evidence verify`: two-word commands are keyed with a space.
  const two = rest[0] !== undefined ? `${name} ${rest[0]}` : undefined
  const entry = (two !== undefined ? COMMANDS[two] : undefined) ?? COMMANDS[name]
  if (entry === undefined) {
    io.stderr.write(`podvm-mesh: unknown command "${argv.slice(0, 2).join(' ')}"\n${usage()}`)
    return 2
  }
  const args = two !== undefined && COMMANDS[two] !== undefined ? rest.slice(1) : rest
  const command = await entry.load()
  return command(args, io)
}

// Run when executed, also through npm's bin symlink; not when imported by tests.
const entry = process.argv[1] === undefined ? undefined : realpathSafe(process.argv[1])
if (entry !== undefined && pathToFileURL(entry).href === import.meta.url) {
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`podvm-mesh: ${err instanceof Error ? err.message : String(err)}\n`)
      process.exitCode = 2
    },
  )
}

function realpathSafe(p: string): string | undefined {
  try {
    return realpathSync(p)
  } catch {
    return undefined
  }
}
