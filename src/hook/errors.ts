import { MeshError } from '../errors.js'

export type HookCode =
  /** stdin is not the OCI state the runtime sends (not JSON, a field missing or out of range). */
  | 'HOOK_BAD_STATE'
  /** argv is not what the agent passes (`<name> prestart`). */
  | 'HOOK_BAD_ARGS'
  /** The container's process is gone, or is not in a mount namespace of its own. */
  | 'HOOK_BAD_PROCESS'
  /** A system call failed (details: call, errno, path). */
  | 'HOOK_SYSCALL'
  /** A path in the container's root file system is a symlink or not a directory. */
  | 'HOOK_UNSAFE_PATH'

export class HookError extends MeshError<HookCode> {}
