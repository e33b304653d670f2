// The mesh's readiness as the guest OCI hook sees it: one file next to the TLS
// directory, `<dirname(tlsDir)>/mesh-status` (`/contrast/mesh-status` by default), so
// the certificate directory stays the one meeting point between the daemon and the hook
// and the signal is not inside what containers get to see. One line:
//
//   pending              no certificates yet, or the daemon is (re)starting or stopping
//   ready                certificates loaded and the final ruleset installed
//   failed <REASON>      the mesh will not come up without a change outside the pod
//                        (the coordinator refused this pod, boot failed); REASON is a code
//
// Written atomically (rename), so a reader sees one whole line or the previous one.
// No file at all reads as `pending`: the daemon has not started yet.

import { readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import { PkiError } from './errors.js'
import { writeFileAtomic } from './atomic-file.js'

export const MESH_STATUS_FILE = 'mesh-status'

export type MeshStatus =
  | { readonly state: 'pending' }
  | { readonly state: 'ready' }
  | { readonly state: 'failed'; readonly reason: string }

const REASON = /^[A-Z][A-Z0-9_]{0,63}$/
const LINE = /^(pending|ready|failed ([A-Z][A-Z0-9_]{0,63}))\n$/

/** `/contrast/tls-config` -> `/contrast/mesh-status`. */
export function meshStatusPath(tlsDir: string): string {
  return join(dirname(tlsDir), MESH_STATUS_FILE)
}

export function renderMeshStatus(s: MeshStatus): string {
  if (s.state !== 'failed') return `${s.state}\n`
  if (!REASON.test(s.reason)) {
    throw new PkiError('PKI_BAD_STATUS', `mesh status reason "${s.reason}" is not a code (A-Z, 0-9, _; at most 64)`, { reason: s.reason })
  }
  return `failed ${s.reason}\n`
}

export function parseMeshStatus(text: string): MeshStatus {
  const m = LINE.exec(text)
  if (m === null) {
    throw new PkiError('PKI_BAD_STATUS', `mesh status ${JSON.stringify(text.slice(0, 80))} is not "pending", "ready" or "failed <CODE>" on one line`, {
      text: text.slice(0, 80),
    })
  }
  if (m[2] !== undefined) return { state: 'failed', reason: m[2] }
  return { state: m[1] as 'pending' | 'ready' }
}

/** Synchronous on purpose: the hook reads it in a short poll loop. A missing file is `pending`. */
export function readMeshStatusSync(path: string): MeshStatus {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'pending' }
    throw new PkiError('PKI_MISSING_FILE', `${path} cannot be read`, { path }, { cause })
  }
  return parseMeshStatus(text)
}

export interface MeshStatusWriter {
  /** Records a new status; writes happen in call order, a repeat is not rewritten. */
  set(status: MeshStatus): Promise<void>
}

/**
 * The daemon's side. Writes are chained so that two quick transitions land in the order
 * they happened; a failed write is logged (the hook then sees the previous status) and
 * does not stop the mesh.
 */
export function meshStatusWriter(tlsDir: string, log: Logger): MeshStatusWriter {
  const path = meshStatusPath(tlsDir)
  const l = log.child({ component: 'pki', statusFile: path })
  let last: string | undefined
  let chain: Promise<void> = Promise.resolve()
  return {
    set(status) {
      const line = renderMeshStatus(status)
      chain = chain.then(async () => {
        if (line === last) return
        try {
          await mkdir(dirname(path), { recursive: true, mode: 0o755 })
          writeFileAtomic(path, line, 0o644)
          last = line
          l.info({ status: line.trim() }, 'mesh status written')
        } catch (err) {
          l.error({ err, status: line.trim() }, 'cannot write the mesh status; the hook sees the previous one')
        }
      })
      return chain
    },
  }
}
