// The guest prestart hook, run by kata-agent for every container it creates (the
// directory comes from CreateSandbox's guest_hook_path, which the policy pins):
//
//   parse the state ─▶ pause container? ─yes─▶ nothing (exit 0)
//         │bad                │no
//         ▼                   ▼
//   refuse (exit 2,     hold the init process (pidfd), wait for the mesh status
//   nothing done)       ├─ ready ─────────────────────▶ expose the certificates (exit 0)
//                       ├─ still pending at the deadline ▶ expose them anyway: the files
//                       │                                  appear when the mesh has them
//                       └─ failed <REASON> ───────────▶ SIGKILL the init process (exit 1)
//
// kata-agent ignores a hook's exit code and kills it after 10 s, so failing closed
// cannot be an exit code: the container's init process is killed before it executes
// the workload, and CreateContainer fails. The same happens when the certificates
// cannot be made visible. The wait ends by HOOK_DEADLINE_MS after the process started,
// well inside the agent's limit, because the agent holds its sandbox lock meanwhile.

import { dirname, join } from 'node:path'
import { readMeshStatusSync, meshStatusPath, type MeshStatus } from '../pki/mesh-status.js'
import { isMeshError } from '../errors.js'
import type { ContainerProcess, ExposedDir } from './container.js'
import { parseHookState } from './state.js'

/** From the hook's start; kata-agent's limit is 10 s (+1 s to exit). */
export const HOOK_DEADLINE_MS = 8_000
export const HOOK_POLL_MS = 100

/** Contrast's two directories, as containers see them, from the daemon's TLS directory. */
export function contrastDirs(tlsDir: string): ExposedDir[] {
  return [
    { source: tlsDir, sourceMode: 0o755, target: ['contrast', 'tls-config'] },
    // The daemon's writeWorkloadSecret: `<dirname(tlsDir)>/secrets`, 0700.
    { source: join(dirname(tlsDir), 'secrets'), sourceMode: 0o700, target: ['contrast', 'secrets'] },
  ]
}

export interface PrestartOptions {
  readonly tlsDir: string
  readonly bundleRoot: string
  /** Monotonic ms at which waiting for the mesh stops. */
  readonly deadline: number
  readonly pollMs?: number
}

/** What the hook does to the world; tests replace it. */
export interface PrestartDeps {
  now(): number
  sleep(ms: number): Promise<void>
  readStatus(path: string): MeshStatus
  openProcess(pid: number): Promise<ContainerProcess>
}

/** The real world. The FFI (container.js, koffi) is loaded only for a workload container. */
export async function realDeps(): Promise<PrestartDeps> {
  return {
    now: () => performance.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    readStatus: readMeshStatusSync,
    openProcess: async (pid) => (await import('./container.js')).openContainerProcess(pid),
  }
}

export type PrestartOutcome = 'refused' | 'skipped' | 'exposed' | 'exposed-before-ready' | 'killed'

export interface PrestartResult {
  readonly outcome: PrestartOutcome
  /** 0 done, 1 failed closed (the container was stopped), 2 input refused (nothing done). */
  readonly exitCode: number
}

export async function runPrestart(
  stdin: string,
  opts: PrestartOptions,
  deps: PrestartDeps,
  say: { info(line: string): void; error(line: string): void },
): Promise<PrestartResult> {
  let state
  try {
    state = parseHookState(stdin, opts.bundleRoot)
  } catch (err) {
    say.error(`refused: ${(err as Error).message}; nothing done`)
    return { outcome: 'refused', exitCode: 2 }
  }
  const tag = `container ${state.id}`
  if (state.sandbox) {
    say.info(`${tag}: pause container, nothing to do`)
    return { outcome: 'skipped', exitCode: 0 }
  }
  let proc: ContainerProcess
  try {
    proc = await deps.openProcess(state.pid)
  } catch (err) {
    say.error(`refused: ${(err as Error).message}; nothing done`)
    return { outcome: 'refused', exitCode: 2 }
  }
  try {
    const statusPath = meshStatusPath(opts.tlsDir)
    let status: MeshStatus = { state: 'pending' }
    let unreadable: string | undefined
    for (;;) {
      try {
        status = deps.readStatus(statusPath)
        unreadable = undefined
      } catch (err) {
        // Our daemon writes it atomically; garbage is a bug, waited out like `pending`.
        status = { state: 'pending' }
        unreadable = (err as Error).message
      }
      if (status.state !== 'pending' || deps.now() >= opts.deadline) break
      await deps.sleep(Math.min(opts.pollMs ?? HOOK_POLL_MS, Math.max(0, opts.deadline - deps.now())))
    }
    if (status.state === 'failed') {
      proc.kill()
      say.error(`${tag}: the mesh has failed (${status.reason}); stopped the container before its workload ran`)
      return { outcome: 'killed', exitCode: 1 }
    }
    const dirs = contrastDirs(opts.tlsDir)
    try {
      proc.expose(state.rootfs, dirs)
    } catch (err) {
      proc.kill()
      const code = isMeshError(err) ? `${err.code}: ` : ''
      say.error(`${tag}: cannot make the certificates visible (${code}${(err as Error).message}); stopped the container before its workload ran`)
      return { outcome: 'killed', exitCode: 1 }
    }
    if (status.state === 'ready') {
      say.info(`${tag}: /contrast/tls-config and /contrast/secrets mounted read-only`)
      return { outcome: 'exposed', exitCode: 0 }
    }
    say.info(
      `${tag}: the mesh is not ready yet${unreadable !== undefined ? ` (status unreadable: ${unreadable})` : ''}; /contrast/tls-config and /contrast/secrets mounted read-only, certificates appear there when it is`,
    )
    return { outcome: 'exposed-before-ready', exitCode: 0 }
  } finally {
    proc.close()
  }
}
