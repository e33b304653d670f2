// The OCI state a runtime writes to a hook's stdin (runtime-spec "State"), checked before
// the hook touches anything: an id, the container's init pid and the bundle directory.
// The Kata agent sends {ociVersion, id, status "created", pid, bundle, annotations};
// runc sends status "creating". Bad input changes nothing: the hook cannot know which
// process to act on, so it neither mounts nor kills.

import { isAbsolute, join, normalize } from 'node:path'
import { HookError } from './errors.js'

/** The CRI annotation that tells the pause container (`sandbox`) from the others. */
export const CONTAINER_TYPE_ANNOTATION = 'io.kubernetes.cri.container-type'
export const SANDBOX_CONTAINER_TYPE = 'sandbox'
/** Where the Kata agent puts each container's bundle: `/run/kata-containers/<id>`. */
export const KATA_BUNDLE_ROOT = '/run/kata-containers'

const MAX_STATE_BYTES = 1 << 20
// Kata ids are 64 hex digits; runtimes accept a few more characters. Never `/` or `..`.
const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/
const MAX_PID = 4_194_304

// Checked by hand, not with a zod schema (the project's rule for external input): six
// fields, and importing zod is ~85 ms of a hook that runs while kata-agent holds its
// sandbox lock, for every container (bench/hook.ts). Every problem is named by field.
function stateIssues(v: unknown): string[] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return ['(root): expected an object']
  const o = v as Record<string, unknown>
  const issues: string[] = []
  const str = (key: string, max: number): void => {
    const x = o[key]
    if (typeof x !== 'string') issues.push(`${key}: expected a string`)
    else if (x.length === 0 || x.length > max) issues.push(`${key}: expected 1..${max} characters`)
  }
  str('ociVersion', 64)
  str('status', 32)
  str('bundle', 4096)
  if (typeof o['id'] !== 'string' || !ID.test(o['id'])) issues.push('id: expected a container id (letters, digits, _ . -, at most 128, no leading dot)')
  const pid = o['pid']
  if (typeof pid !== 'number' || !Number.isInteger(pid)) issues.push('pid: expected an integer')
  else if (pid < 2 || pid > MAX_PID) issues.push(`pid: ${pid} is not 2..${MAX_PID} (pid 0 and 1 are never a container being created)`)
  const ann = o['annotations']
  if (ann !== undefined && (typeof ann !== 'object' || ann === null || Array.isArray(ann) || Object.values(ann).some((a) => typeof a !== 'string'))) {
    issues.push('annotations: expected an object of strings')
  }
  return issues
}

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
  const issues = stateIssues(json)
  if (issues.length > 0) {
    throw new HookError('HOOK_BAD_STATE', `state on stdin is not an OCI state: ${issues.join('; ')}`, { issues })
  }
  const s = json as { id: string; pid: number; bundle: string; annotations?: Record<string, string> }
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
