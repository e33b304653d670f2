// The lifecycle of a data plane, written once for both implementations.
//
//   created --start()--> listening --setCredentials()--> serving
//   created|listening|serving --close()--> draining --(drained, or drainMs)--> closed
//   any --destroy()--> closed
//
// The states mean the same whichever data plane runs; how an implementation gets
// there is its own (the hooks at the bottom of the class):
//
//   listening  Ready for the ruleset, without credentials. Nothing is ever passed
//              through in plaintext meanwhile: the builtin data plane binds its
//              sockets and holds what it accepts (timeouts.certificateWaitMs); Envoy
//              has its bootstrap written and is not running yet, so redirected SYNs
//              meet the ruleset's drop and clients retransmit. Either way a client
//              sees a delay, never plaintext and never a reset.
//   serving    Credentials installed; `live` once the listeners complete handshakes.
//   draining   Inbound listeners stop accepting; established connections carry on
//              for at most timeouts.drainMs. Egress keeps serving to the end: the
//              workload may still be calling out while it shuts down. The drain
//              ends early once no connection is left (Envoy: its active-connection
//              counters, scraped every 100 ms).
//   closed     Every socket is closed and every process the data plane ran is gone.
//
// Credentials may arrive in any state but closed, before start() too. They are
// checked once (pki) before the implementation sees them, and a refusal changes
// nothing. Observers (onStateChange) run after the call that made the change.

import type { Logger } from 'pino'
import type { TlsMaterial, TlsMaterialInfo } from '../pki/index.js'
import { sleep } from '../timers.js'
import { requireCheckedMaterial } from './checked-material.js'
import type { DataPlane, DataPlaneState, DataPlaneStats } from './dataplane.js'
import { DataPlaneError } from './errors.js'
import type { DataPlaneSpec } from './spec.js'

export type StateObserver = (prev: DataPlaneState, next: DataPlaneState) => void

const NEXT: Readonly<Record<DataPlaneState, readonly DataPlaneState[]>> = {
  created: ['listening', 'draining', 'closed'],
  listening: ['serving', 'draining', 'closed'],
  serving: ['draining', 'closed'],
  draining: ['closed'],
  closed: [],
}

/** How often whenLive() looks at `live`: Envoy's liveness is itself polled, so an event would buy little. */
const LIVE_POLL_MS = 25

export abstract class DataPlaneBase implements DataPlane, AsyncDisposable {
  protected readonly spec: DataPlaneSpec
  /** `component: dataplane` and `impl`, so MESH_TRACE=dataplane means the same whichever runs. */
  protected readonly log: Logger
  #state: DataPlaneState = 'created'
  #starting = false
  #hasCredentials = false
  #closing: Promise<void> | undefined
  readonly #observers = new Set<StateObserver>()

  constructor(spec: DataPlaneSpec, log: Logger, impl: 'builtin' | 'envoy') {
    this.spec = spec
    this.log = log.child({ component: 'dataplane', impl })
  }

  get state(): DataPlaneState {
    return this.#state
  }

  /** Whether the listeners accept and complete handshakes right now. */
  abstract get live(): boolean
  abstract stats(): DataPlaneStats

  /** Calls `fn` after each state change, never inside the call that made it. Returns the unsubscribe. */
  onStateChange(fn: StateObserver): () => void {
    this.#observers.add(fn)
    return () => this.#observers.delete(fn)
  }

  async start(): Promise<void> {
    if (this.#state !== 'created' || this.#starting) {
      throw new DataPlaneError('DATAPLANE_STATE', `start() in state ${this.#state}${this.#starting ? ' (already starting)' : ''}`, {
        op: 'start',
        state: this.#state,
      })
    }
    this.#starting = true
    try {
      await this.open()
    } finally {
      this.#starting = false
    }
    if (this.#state !== 'created') {
      // close() or destroy() ran while opening: release what open() took.
      this.teardown()
      throw new DataPlaneError('DATAPLANE_STATE', `stopped while starting (now ${this.#state})`, { op: 'start', state: this.#state })
    }
    this.#transition('listening')
    if (this.#hasCredentials) this.#transition('serving')
  }

  setCredentials(material: TlsMaterial): void {
    if (this.#state === 'closed') {
      throw new DataPlaneError('DATAPLANE_STATE', 'setCredentials() after close', { op: 'setCredentials', state: this.#state })
    }
    this.installCredentials(material, requireCheckedMaterial(material))
    this.#hasCredentials = true
    if (this.#state === 'listening') this.#transition('serving')
  }

  /** Stops accepting, lets connections drain for timeouts.drainMs, then closes the rest. Idempotent. */
  close(): Promise<void> {
    if (this.#state === 'closed') return this.#closing ?? Promise.resolve()
    this.#closing ??= this.#drainThenClose()
    return this.#closing
  }

  /** Closes every listener, connection and process now. Idempotent. */
  destroy(err?: Error): void {
    if (this.#state === 'closed') return
    if (err !== undefined) this.log.warn({ err }, 'destroyed')
    this.#transition('closed')
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** Not healthy once closed; an implementation that can fail by itself (Envoy) adds its own reasons. */
  healthy(): boolean {
    return this.#state !== 'closed'
  }

  /** stats() as it is; a data plane whose counters live elsewhere (Envoy) fetches them first. */
  refreshStats(): Promise<DataPlaneStats> {
    return Promise.resolve(this.stats())
  }

  async whenLive(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted()
      if (this.live) return
      if (this.#state === 'draining' || this.#state === 'closed') {
        throw new DataPlaneError('DATAPLANE_STATE', `data plane ${this.#state} before it became live`, { state: this.#state })
      }
      await sleep(LIVE_POLL_MS, signal)
    }
  }

  async #drainThenClose(): Promise<void> {
    this.#transition('draining')
    try {
      await this.drain(this.spec.timeouts.drainMs)
    } finally {
      if (this.#state === 'draining') this.#transition('closed')
    }
  }

  #transition(to: DataPlaneState): void {
    const prev = this.#state
    if (!NEXT[prev].includes(to)) {
      // A bug in this class, not a caller's mistake: every public entry checks first.
      throw new DataPlaneError('DATAPLANE_STATE', `illegal transition ${prev} -> ${to}`, { from: prev, to })
    }
    this.#state = to
    this.log.info({ from: prev, to }, `${prev} -> ${to}`)
    // Reported before the hook runs, so a hook that throws cannot hide the change.
    if (this.#observers.size > 0) {
      const observers = [...this.#observers]
      queueMicrotask(() => {
        for (const fn of observers) fn(prev, to)
      })
    }
    if (to === 'serving') {
      try {
        this.serve()
      } catch (err) {
        // `serving` with nothing serving would wait for whenLive() forever: fail closed.
        this.log.error({ err }, 'could not start serving; closing')
        this.#transition('closed')
        throw err
      }
    }
    if (to === 'closed') this.teardown()
  }

  // ---- what an implementation supplies ------------------------------------------

  /**
   * created -> listening: whatever must be in place before the ruleset sends
   * connections here. Throws (typed) having taken nothing; the state stays `created`.
   */
  protected abstract open(): Promise<void>
  /**
   * Takes checked material, in any state but closed; throws (typed) having changed
   * nothing. Connections already established keep the credentials they started with.
   */
  protected abstract installCredentials(material: TlsMaterial, info: TlsMaterialInfo): void
  /** Entering serving: credentials are installed and the listeners are open. A throw closes the data plane. */
  protected abstract serve(): void
  /** In draining: stop inbound accepts, wait for the connections or `drainMs`, whichever is first. */
  protected abstract drain(drainMs: number): Promise<void>
  /** Entering closed, or a start() that was stopped: release everything at once. Idempotent. */
  protected abstract teardown(): void
}
