// Which data plane `run` starts: Envoy where the image ships it, the builtin one
// otherwise. `auto` looks for an executable Envoy and logs what it chose and why.

import { executable } from '../executable.js'
import { delimiter, join } from 'node:path'
import type { Logger } from 'pino'
import type { DataPlane, DataPlaneSpec, PendingLimits } from '../dataplane/index.js'
import { AgentError } from './errors.js'

export type DataPlaneKind = 'builtin' | 'envoy' | 'auto'

export interface DataPlaneChoice {
  readonly kind: 'builtin' | 'envoy'
  readonly reason: string
  readonly envoyPath?: string
}

/** `--envoy-bin` (a path or a name looked up on PATH), else `envoy` on PATH. */
export function findEnvoy(env: NodeJS.ProcessEnv, configured?: string): string | undefined {
  const wanted = configured ?? env['ENVOY_BIN'] ?? 'envoy'
  if (wanted.includes('/')) return executable(wanted) ? wanted : undefined
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir !== '' && executable(join(dir, wanted))) return join(dir, wanted)
  }
  return undefined
}

export function chooseDataPlane(kind: string, env: NodeJS.ProcessEnv, envoyBin?: string): DataPlaneChoice {
  if (kind !== 'builtin' && kind !== 'envoy' && kind !== 'auto') {
    throw new AgentError('AGENT_BAD_ARGS', `--dataplane must be builtin, envoy or auto, got "${kind}"`, { kind })
  }
  if (kind === 'builtin') return { kind: 'builtin', reason: 'requested' }
  const envoyPath = findEnvoy(env, envoyBin)
  if (envoyPath !== undefined) return { kind: 'envoy', reason: kind === 'auto' ? `found ${envoyPath}` : 'requested', envoyPath }
  if (kind === 'envoy') {
    throw new AgentError('AGENT_BAD_ARGS', `--dataplane envoy: no executable envoy (${envoyBin ?? env['ENVOY_BIN'] ?? 'envoy on PATH'})`, {
      kind,
    })
  }
  return { kind: 'builtin', reason: 'no envoy executable found' }
}

/** A flag's value as a positive integer; undefined when the flag is absent. */
export function positiveIntegerFlag(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const n = Number(text)
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new AgentError('AGENT_BAD_ARGS', `--${flag} must be a positive integer, got "${text}"`, { field: flag, value: text })
  }
  return n
}

/** The builtin data plane's bounds on unauthenticated connections, from `--max-pending[-per-source]`. */
export function pendingLimitsFromArgs(values: { readonly 'max-pending'?: string; readonly 'max-pending-per-source'?: string }): Partial<PendingLimits> {
  const out: { -readonly [K in keyof PendingLimits]?: number } = {}
  const flags = [
    ['max-pending', 'pendingPerListener'],
    ['max-pending-per-source', 'pendingPerSource'],
  ] as const
  for (const [flag, key] of flags) {
    const n = positiveIntegerFlag(flag, values[flag])
    if (n !== undefined) out[key] = n
  }
  return out
}

/** Loads only the chosen implementation: the other one's modules stay out of the process. */
export async function createDataPlane(
  choice: DataPlaneChoice,
  spec: DataPlaneSpec,
  opts: { log: Logger; workDir?: string; limits?: Partial<PendingLimits>; envoyConcurrency?: number },
): Promise<DataPlane> {
  opts.log.info({ dataplane: choice.kind, reason: choice.reason }, 'data plane chosen')
  if (choice.kind === 'builtin') {
    const { BuiltinDataPlane } = await import('../dataplane/builtin/index.js')
    return new BuiltinDataPlane(spec, { log: opts.log, limits: opts.limits })
  }
  const { DEFAULT_ENVOY_WORK_DIR, EnvoyDataPlane } = await import('../dataplane/envoy/index.js')
  return new EnvoyDataPlane(spec, {
    log: opts.log,
    workDir: opts.workDir ?? DEFAULT_ENVOY_WORK_DIR,
    envoyPath: choice.envoyPath,
    concurrency: opts.envoyConcurrency,
  })
}
