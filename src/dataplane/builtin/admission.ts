// Bounds on connections that have not authenticated yet. A connection is *pending*
// from accept until its TLS handshake is complete and checked (ingress: the peer is
// a mesh member or the listener asks for no certificate; egress: the upstream proved
// its name), including the time it is held while the data plane waits for its first
// certificates. Pending connections cost memory (a TLS handshake state each) and are
// free for anyone who can reach a port, so they are bounded:
//
// - per source address, on listeners that face the network (ingress): a source that
//   already has `pendingPerSource` pending connections gets the next one refused at
//   once (reset, nothing allocated). The flooding source pays, not its neighbours.
// - per listener: at `pendingPerListener`, the oldest pending connection of that
//   listener is shed to make room. A legitimate client needs a few milliseconds to
//   authenticate; a flood has to keep the listener full for longer than that to
//   delay it, and can never grow memory past the bound.
//
// Established (authenticated) connections are not counted here.

import { DataPlaneError } from '../errors.js'
import { DEFAULT_PENDING_LIMITS, type PendingLimits } from '../spec.js'

export type Admission =
  | {
      readonly admitted: true
      /** Ends the pending phase (authenticated, or closed). Idempotent. */
      readonly release: () => void
    }
  | { readonly admitted: false; readonly reason: 'PENDING_PER_SOURCE' }

interface Entry {
  readonly listener: string
  readonly source: string | undefined
  readonly shed: () => void
}

export function checkPendingLimits(limits: PendingLimits): PendingLimits {
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new DataPlaneError('DATAPLANE_SPEC', `${key} must be a positive integer, got ${String(value)}`, { [key]: value })
    }
  }
  return limits
}

export class PendingConnections {
  readonly #limits: PendingLimits
  /** Per listener, in admission order: the first entry is the oldest. */
  readonly #byListener = new Map<string, Set<Entry>>()
  readonly #bySource = new Map<string, number>()

  constructor(limits: PendingLimits = DEFAULT_PENDING_LIMITS) {
    this.#limits = checkPendingLimits(limits)
  }

  /**
   * Admits a connection of `listener` from `source` (undefined: not limited per source).
   * When the listener is full, the oldest pending connection is removed and its `shed`
   * runs (synchronously, before this returns).
   */
  admit(listener: string, source: string | undefined, shed: () => void): Admission {
    if (source !== undefined && (this.#bySource.get(source) ?? 0) >= this.#limits.pendingPerSource) {
      return { admitted: false, reason: 'PENDING_PER_SOURCE' }
    }
    let entries = this.#byListener.get(listener)
    if (entries === undefined) {
      entries = new Set()
      this.#byListener.set(listener, entries)
    }
    while (entries.size >= this.#limits.pendingPerListener) {
      const oldest = entries.values().next().value as Entry
      this.#remove(oldest)
      oldest.shed()
    }
    const entry: Entry = { listener, source, shed }
    entries.add(entry)
    if (source !== undefined) this.#bySource.set(source, (this.#bySource.get(source) ?? 0) + 1)
    return { admitted: true, release: () => this.#remove(entry) }
  }

  /** Pending connections, of one listener or of all. */
  count(listener?: string): number {
    if (listener !== undefined) return this.#byListener.get(listener)?.size ?? 0
    let n = 0
    for (const entries of this.#byListener.values()) n += entries.size
    return n
  }

  #remove(entry: Entry): void {
    const entries = this.#byListener.get(entry.listener)
    if (entries === undefined || !entries.delete(entry)) return
    if (entry.source === undefined) return
    const n = (this.#bySource.get(entry.source) ?? 1) - 1
    if (n <= 0) this.#bySource.delete(entry.source)
    else this.#bySource.set(entry.source, n)
  }
}
