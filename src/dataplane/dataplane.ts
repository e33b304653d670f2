// The seam between the agent and a data plane. The agent owns the lifecycle and the
// certificates; a data plane only carries bytes according to its DataPlaneSpec.

import type { TlsMaterial } from '../pki/index.js'

export type { TlsMaterial }

/** Monotonic counters; the agent renders them as Prometheus metrics. */
export interface DataPlaneStats {
  /** By listener name. */
  readonly connectionsAccepted: Readonly<Record<string, number>>
  readonly connectionsActive: number
  /** Of those, not authenticated yet (held for certificates or in the handshake); builtin only. */
  readonly connectionsPending?: number
  readonly handshakesCompleted: Readonly<Record<string, number>>
  /**
   * By failure reason code (e.g. `TLS_HANDSHAKE`, `NO_CLIENT_CERT`, `SAN_MISMATCH`, `LOOP`, `UPSTREAM_CONNECT`,
   * and the flood bounds `PENDING_PER_SOURCE`, `PENDING_SHED`).
   */
  readonly failures: Readonly<Record<string, number>>
  readonly bytesIn: number
  readonly bytesOut: number
}

/** What each state means, and the transitions between them: lifecycle.ts. */
export type DataPlaneState = 'created' | 'listening' | 'serving' | 'draining' | 'closed'

export interface DataPlane {
  readonly state: DataPlaneState
  /** Calls `fn` after each state change, never inside the call that made it. Returns the unsubscribe. */
  onStateChange(fn: (prev: DataPlaneState, next: DataPlaneState) => void): () => void
  /** created -> listening (lifecycle.ts): ready for the ruleset. Rejects, typed, having taken nothing. */
  start(): Promise<void>
  /**
   * Installs or swaps credentials, in any state but closed. Refused material (typed
   * DATAPLANE_CREDENTIALS) changes nothing. Established connections keep the
   * credentials they started with.
   */
  setCredentials(material: TlsMaterial): void
  stats(): DataPlaneStats
  /**
   * Brings stats() up to date and returns it. A data plane whose counters live in
   * another process (Envoy) scrapes them here; an in-process one just returns stats().
   */
  refreshStats(): Promise<DataPlaneStats>
  /**
   * Whether the listeners accept and complete handshakes right now (bound, credentials
   * loaded). For Envoy: its admin /ready said LIVE since the current process started.
   */
  readonly live: boolean
  /**
   * False when the data plane cannot serve and is not about to recover by itself: closed,
   * or (Envoy) crash-looping. A single restart is not unhealthy; it is not live either.
   */
  healthy(): boolean
  /**
   * Resolves once `live` is true. Rejects with DATAPLANE_STATE if the data plane closes
   * first, or with the signal's reason. The daemon installs the final ruleset only after
   * this: until then the tproxy rules would send connections to nothing.
   */
  whenLive(signal?: AbortSignal): Promise<void>
  /**
   * Inbound stops accepting at once, egress serves on; connections drain for at most
   * timeouts.drainMs, then the rest are destroyed. Idempotent.
   */
  close(): Promise<void>
  /** Closes every listener and socket now. Idempotent. */
  destroy(err?: Error): void
}
