// The guest daemon's boot sequence and shutdown.
//
//   created -> baseline -> waiting-certificates -> ready -> draining -> stopped
//       \__________\_______________\__________________\-> failed
//
// baseline: the fail-closed ruleset is installed; the data plane's listeners are bound
//   (connections that arrive early are held by the data plane, never passed through).
// waiting-certificates: polling/watching the TLS directory until a consistent set exists.
// ready: credentials loaded, the data plane live (Envoy: listeners bound), the final
//   ruleset installed in one atomic `nft -f`.
// draining: SIGTERM — the baseline goes back in first (nothing new gets in; packets of
//   connections the data plane holds still flow), then the listeners close and
//   established connections get the drain period. A crash leaves whatever ruleset was
//   installed: both fail closed.
//
// Listeners are told of every transition after it happened, never synchronously inside
// the call that caused it.

import type { Logger } from 'pino'
import type { MeshConfig } from '../config/index.js'
import type { DataPlane } from '../dataplane/index.js'
import type { Ruleset, Runner } from '../netfilter/index.js'
import { applyRuleset, renderBaseline, renderFinal } from '../netfilter/index.js'
import { readTlsDir, watchTlsDir, type TlsDirWatcher, type TlsMaterialInfo } from '../pki/index.js'
import { sleep } from '../timers.js'
import { AgentError } from './errors.js'

export type DaemonState = 'created' | 'baseline' | 'waiting-certificates' | 'ready' | 'draining' | 'stopped' | 'failed'

export interface DaemonOptions {
  readonly config: MeshConfig
  readonly tlsDir: string
  readonly dataPlane: DataPlane
  readonly runner: Runner
  readonly log: Logger
  /** First retry delay while the TLS directory is incomplete; doubles up to pollMaxMs. */
  readonly pollMs?: number
  readonly pollMaxMs?: number
}

export type StateListener = (from: DaemonState, to: DaemonState) => void

export class MeshDaemon {
  #state: DaemonState = 'created'
  readonly #opts: DaemonOptions
  readonly #log: Logger
  readonly #listeners = new Set<StateListener>()
  readonly #abort = new AbortController()
  #watcher: TlsDirWatcher | undefined
  #certificate: TlsMaterialInfo | undefined
  #reloads = 0
  #stopping: Promise<void> | undefined
  readonly startedAt = new Date()

  constructor(opts: DaemonOptions) {
    this.#opts = opts
    this.#log = opts.log.child({ component: 'agent' })
  }

  get state(): DaemonState {
    return this.#state
  }

  get certificate(): TlsMaterialInfo | undefined {
    return this.#certificate
  }

  get certificateReloads(): number {
    return this.#reloads
  }

  onTransition(fn: StateListener): () => void {
    this.#listeners.add(fn)
    return () => this.#listeners.delete(fn)
  }

  #transition(allowed: readonly DaemonState[], to: DaemonState): void {
    const from = this.#state
    if (!allowed.includes(from)) {
      throw new AgentError('AGENT_ILLEGAL_TRANSITION', `cannot go from ${from} to ${to}`, { from, to })
    }
    this.#state = to
    this.#log.info({ from, to }, `${from} -> ${to}`)
    for (const fn of this.#listeners) queueMicrotask(() => fn(from, to))
  }

  /** Runs the boot sequence until ready. Rejects (state `failed`) if a step cannot be done. */
  async start(): Promise<void> {
    const { config, dataPlane } = this.#opts
    // Said at every start, so an opt-out of secure naming never goes unnoticed.
    for (const e of config.egress) {
      if (e.meshCaOnly === true) {
        this.#log.warn(
          { egress: e.name, remote: `${e.remote.host}:${e.remote.port}` },
          `secure naming is off for egress "${e.name}" (meshCaOnly): any mesh member can answer for ${e.remote.host}`,
        )
      }
    }
    try {
      await this.#apply('baseline', renderBaseline(config))
      this.#transition(['created'], 'baseline')
      await dataPlane.start()
      this.#transition(['baseline'], 'waiting-certificates')
      const { material, info } = await this.#waitForCertificates()
      dataPlane.setCredentials(material)
      this.#noteCertificate(info)
      this.#watcher = watchTlsDir(
        this.#opts.tlsDir,
        (next, nextInfo) => {
          dataPlane.setCredentials(next)
          this.#noteCertificate(nextInfo)
        },
        { log: this.#opts.log, signal: this.#abort.signal, current: material },
      )
      // The final ruleset sends connections to the listeners: they must be there. Envoy
      // binds them only after it has loaded its secrets; until then the baseline holds.
      await dataPlane.whenLive(this.#abort.signal)
      await this.#apply('final', renderFinal(config))
      this.#transition(['waiting-certificates'], 'ready')
    } catch (err) {
      if (this.#abort.signal.aborted) return
      this.#transition(['created', 'baseline', 'waiting-certificates'], 'failed')
      this.#log.error({ err }, 'boot failed; the ruleset stays closed')
      throw err
    }
  }

  #noteCertificate(info: TlsMaterialInfo): void {
    this.#certificate = info
    this.#reloads++
    this.#log.info({ subject: info.subject, sans: info.sans, notAfter: info.notAfter.toISOString() }, 'certificates loaded')
  }

  async #apply(which: 'baseline' | 'final', ruleset: Ruleset): Promise<void> {
    await applyRuleset(ruleset, this.#opts.runner, this.#opts.log)
    this.#log.info({ ruleset: which }, 'ruleset installed')
  }

  async #waitForCertificates(): Promise<Awaited<ReturnType<typeof readTlsDir>>> {
    const signal = this.#abort.signal
    let delay = this.#opts.pollMs ?? 500
    const max = this.#opts.pollMaxMs ?? 5_000
    let lastCode: string | undefined
    for (;;) {
      if (signal.aborted) throw new AgentError('AGENT_ABORTED', 'stopped while waiting for certificates')
      try {
        return await readTlsDir(this.#opts.tlsDir)
      } catch (err) {
        const code = (err as { code?: string }).code
        // Log once per distinct reason, not once per poll.
        if (code !== lastCode) {
          this.#log.warn({ err, tlsDir: this.#opts.tlsDir }, 'certificates not available yet; the pod stays closed')
          lastCode = code
        }
      }
      // Leaves no listener on the daemon's long-lived signal (timers.ts).
      await sleep(delay, signal)
      delay = Math.min(delay * 2, max)
    }
  }

  /**
   * Graceful stop: put the closed baseline back, then stop accepting and drain. Idempotent.
   * Baseline first, so no moment exists in which the final ruleset's tproxy rules run
   * without a listener behind them (issue 10 item 5: a SYN on a TIME-WAIT 4-tuple then
   * reached the application). If the baseline cannot be installed, the final ruleset
   * stays, which fails closed as well.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop(): Promise<void> {
    this.#abort.abort()
    this.#watcher?.close()
    this.#transition(['created', 'baseline', 'waiting-certificates', 'ready', 'failed'], 'draining')
    await this.#apply('baseline', renderBaseline(this.#opts.config)).catch((err: unknown) =>
      this.#log.error({ err }, 'could not restore the baseline; the last ruleset stays in place'),
    )
    try {
      await this.#opts.dataPlane.close()
    } finally {
      this.#transition(['draining'], 'stopped')
    }
  }
}
