// The OCI state a runtime writes to a hook's stdin (runtime-spec "State"), checked before
// the hook touches anything: an id, the container's init pid and the bundle directory.
// The Kata agent sends {ociVersion, id, status "created", pid, bundle, annotations};
// runc sends status "creating". Bad input changes nothing: the hook cannot know which
// process to act on, so it neither mounts nor kills.

import { isAbsolute, join, normalize } from 'node:path'
import { z } from 'zod'
import { HookError } from './errors.js'

/** The CRI annotation that tells the pause container (`sandbox`) from the others. */
export const CONTAINER_TYPE_ANNOTATION = 'io.kubernetes.cri.container-type'
export const SANDBOX_CONTAINER_TYPE = 'sandbox'
/** Where the Kata agent puts each container's bundle: `/run/kata-containers/<id>`. */
export const KATA_BUNDLE_ROOT = '/run/kata-containers'

const MAX_STATE_BYTES = 1 << 20
// Kata ids are 64 hex digits; runtimes accept a few more characters. Never `/` or `..`.
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

const StateSchema = z.object({
  ociVersion: z.string().max(64),
  id: z.string().regex(ID, 'a container id (letters, digits, _ . -, at most 128, no leading dot)'),
  status: z.string().max(32),
  pid: z.number().int().min(2, 'pid 0 and 1 are never a container being created').max(4_194_304),
  bundle: z.string().min(1).max(4096),
  annotations: z.record(z.string(), z.string()).optional(),
})

export interface HookState {
  readonly id: string
  readonly pid: number
  readonly bundle: string
  /** `<bundle>/rootfs`: the container's root before pivot_root, in its mount namespace. */
  readonly rootfs: string
  /** The pause container: the hook leaves it alone. */
  readonly sandbox: boolean
}

/** Parses stdin; `bundleRoot` is where bundles must live (`<bundleRoot>/<id>`, nothing else). */
export function parseHookState(text: string, bundleRoot: string = KATA_BUNDLE_ROOT): HookState {
  if (text.length > MAX_STATE_BYTES) {
    throw new HookError('HOOK_BAD_STATE', `state on stdin is ${text.length} B, more than ${MAX_STATE_BYTES}`, { size: text.length })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (cause) {
    throw new HookError('HOOK_BAD_STATE', `state on stdin is not JSON: ${(cause as Error).message}`, { head: text.slice(0, 60) }, { cause })
  }
  const r = StateSchema.safeParse(json)
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    throw new HookError('HOOK_BAD_STATE', `state on stdin is not an OCI state: ${issues.join('; ')}`, { issues })
  }
  const s = r.data
  const expected = join(bundleRoot, s.id)
  if (!isAbsolute(s.bundle) || normalize(s.bundle) !== s.bundle || s.bundle !== expected) {
    throw new HookError('HOOK_BAD_STATE', `state on stdin: bundle "${s.bundle}" is not ${expected}`, { bundle: s.bundle, expected })
  }
  return {
    id: s.id,
    pid: s.pid,
    bundle: s.bundle,
    rootfs: join(s.bundle, 'rootfs'),
    sandbox: s.annotations?.[CONTAINER_TYPE_ANNOTATION] === SANDBOX_CONTAINER_TYPE,
  }
}
