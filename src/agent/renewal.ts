// Keeping a certificate: obtain one, hold it until its renewal time, obtain the next;
// on failure retry with jittered exponential backoff, keeping what we hold. Renewal
// never stops while the daemon runs, whatever an attempt throws.
//
//   idle ──run──▶ obtaining ──ok──▶ holding ──renewAt──▶ obtaining
//                   │   ▲                                    
//                 fail  └──backoff── retrying
//   any ──abort──▶ stopped
//
// Policy (when to try again) is `renewWait` and `retryDelay`, pure; the loop is mechanism.

import type { Logger } from 'pino'
import { isMeshError, type MeshError } from '../errors.js'
import { sleep } from '../timers.js'
import { AgentError } from './errors.js'

export type RenewalState = 'idle' | 'obtaining' | 'holding' | 'retrying' | 'stopped'

const ALLOWED: Record<RenewalState, readonly RenewalState[]> = {
  idle: ['obtaining', 'stopped'],
  obtaining: ['holding', 'retrying', 'stopped'],
  holding: ['obtaining', 'stopped'],
  retrying: ['obtaining', 'stopped'],
  stopped: [],
}

export interface Held {
  readonly serial: string
  readonly notBefore: Date
  readonly notAfter: Date
  /** When to renew it. */
  readonly renewAt: Date
}

export interface BackoffOptions {
  /** First retry delay, doubling up to max, each jittered to [50 %, 100 %]. */
  readonly retryInitialMs?: number
  readonly retryMaxMs?: number
  readonly random?: () => number
}

/** How long to hold a fresh certificate before renewing it. */
export function renewWait(held: Held, now: number): number {
  // A lifetime shorter than a round trip must not turn renewal into a busy loop.
  const floor = Math.min(1_000, (held.notAfter.getTime() - held.notBefore.getTime()) / 10)
  return Math.max(floor, held.renewAt.getTime() - now)
}

/** The wait after the (failuresInRow+1)-th failure in a row, holding `held` (or nothing). */
export function retryDelay(failuresInRow: number, held: Held | undefined, now: number, o: BackoffOptions = {}): number {
  const initial = o.retryInitialMs ?? 1_000
  const max = o.retryMaxMs ?? 30_000
  let delay = Math.min(max, initial * 2 ** Math.min(failuresInRow, 20))
  delay = Math.round(delay * (0.5 + 0.5 * (o.random ?? Math.random)()))
  // Holding a certificate that expires soon: do not sleep past most of what is left.
  if (held !== undefined) delay = Math.max(Math.min(initial, delay), Math.min(delay, Math.floor((held.notAfter.getTime() - now) / 4)))
  return delay
}

export interface RenewalOptions extends BackoffOptions {
  /** One attempt; throws a typed error naming what failed. */
  readonly obtain: (signal: AbortSignal) => Promise<Held>
  readonly log: Logger
  /** Told of every failed attempt, and whether a certificate is held meanwhile. */
  readonly onFailure?: (failure: MeshError, holding: boolean) => void
}

export class Renewal {
  readonly #o: RenewalOptions
  #state: RenewalState = 'idle'
  #held: Held | undefined
  #failures = 0

  constructor(opts: RenewalOptions) {
    this.#o = opts
  }

  get state(): RenewalState {
    return this.#state
  }

  /** Failed attempts since the start. */
  get failures(): number {
    return this.#failures
  }

  #transition(to: RenewalState): void {
    if (!ALLOWED[this.#state].includes(to)) {
      throw new AgentError('AGENT_ILLEGAL_TRANSITION', `renewal: ${this.#state} -> ${to}`, { from: this.#state, to })
    }
    this.#o.log.trace(`renewal ${this.#state} -> ${to}`)
    this.#state = to
  }

  /** Obtains, then renews until `signal` aborts; never throws for a failed attempt. */
  async run(signal: AbortSignal): Promise<void> {
    let failuresInRow = 0
    let lastReason: string | undefined
    while (!signal.aborted) {
      this.#transition('obtaining')
      let wait: number
      try {
        const got = await this.#o.obtain(signal)
        this.#held = got
        failuresInRow = 0
        lastReason = undefined
        this.#transition('holding')
        wait = renewWait(got, Date.now())
      } catch (err) {
        if (signal.aborted) break
        // Anything that fails an attempt (a full disk, a foreign error from a library)
        // is retried like a refusal: renewal must never stop while the daemon runs.
        const failure = isMeshError(err)
          ? err
          : new AgentError('AGENT_ATTEMPT_FAILED', err instanceof Error ? err.message : String(err), {}, { cause: err })
        this.#failures++
        const delay = retryDelay(failuresInRow, this.#held, Date.now(), this.#o)
        failuresInRow++
        this.#transition('retrying')
        this.#o.onFailure?.(failure, this.#held !== undefined)
        const reason = String((failure.details as Record<string, unknown>)['reason'] ?? failure.code)
        const fields = { code: failure.code, reason, details: failure.details, retryInMs: delay, failuresInRow, holding: this.#held?.serial ?? null }
        const msg =
          this.#held === undefined
            ? 'cannot obtain a mesh certificate; the pod stays closed; retrying'
            : 'cannot renew the mesh certificate; keeping the current one; retrying'
        // Same reason again: debug, so a long outage does not flood the log.
        if (reason === lastReason) this.#o.log.debug(fields, msg)
        else this.#o.log.warn({ ...fields, err: { message: failure.message } }, msg)
        lastReason = reason
        wait = delay
      }
      await sleep(wait, signal)
    }
    this.#transition('stopped')
  }
}
