// The Envoy data plane: renders the bootstrap, keeps the SDS files current, and runs
// `envoy` as a supervised child process. Its lifecycle is lifecycle.ts's.
//
// Envoy is spawned only once credentials exist (entering `serving`). File-based SDS
// requires the secret file to exist when Envoy loads its config, and a listener without
// its secret would only warm (not accept) anyway, so an earlier spawn buys nothing.
// `listening` therefore means the bootstrap is written and no socket is bound: until
// Envoy's listeners are up, redirected SYNs meet the ruleset's explicit drop and
// clients retransmit (a delay, never plaintext, never a reset).
//
// After a crash Envoy is restarted with capped exponential backoff; a run that lasted
// `backoff.resetAfterMs` resets the delay. close() stops Envoy's listeners through its
// admin API (/drain_listeners), gives established connections timeouts.drainMs, then
// SIGTERM, then SIGKILL after killGraceMs.

import { spawn, type ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { mkdirSync } from 'node:fs'
import { executable } from '../../executable.js'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Logger } from 'pino'
import type { DataPlaneStats, TlsMaterial } from '../dataplane.js'
import { DataPlaneBase } from '../lifecycle.js'
import type { DataPlaneSpec } from '../spec.js'
import { renderBootstrap } from './bootstrap.js'
import { EnvoyError } from './errors.js'
import { writeEnvoyFile, writeSdsResources } from './sds.js'
import { addStats, parseEnvoyStats, statsFromEnvoy } from './stats.js'
import { sleep, within } from '../../timers.js'

/** `[level][logger] message`: the level is parsed back so Envoy's lines keep theirs in pino. */
export const ENVOY_LOG_FORMAT = '[%l][%n] %v'
const LOG_LINE_RE = /^\[(trace|debug|info|warning|error|critical|off)\]\[([^\]]*)\] ?(.*)$/

const PINO_LEVEL: Record<string, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  error: 'error',
  critical: 'fatal',
  off: 'info',
}

/** util-linux's setpriv (Debian: essential), for PR_SET_PDEATHSIG between fork and exec. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find(executable)

export const DEFAULT_ENVOY_ADMIN_PORT = 15000
/** How often a draining Envoy's active connections are looked at: the drain ends when there are none. */
const DRAIN_POLL_MS = 100
/** How often a starting Envoy's /ready is polled: bounds how late `live` notices it. */
const LIVE_POLL_MS = 20
/** bootstrap.json and sds/ live here in the guest (tmpfs: the SDS files hold the key). */
export const DEFAULT_ENVOY_WORK_DIR = '/run/podvm-mesh/envoy'

export interface BackoffOptions {
  readonly initialMs: number
  readonly maxMs: number
  /** A run at least this long resets the delay to initialMs. */
  readonly resetAfterMs: number
}

/** Consecutive exits after which healthy() turns false (see healthy()). */
export const CRASH_LOOP_EXITS = 3

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000, resetAfterMs: 60_000 }

export interface EnvoyDataPlaneOptions {
  readonly log: Logger
  /** Holds `bootstrap.json` and the SDS directory `sds/`; the daemon's tmpfs in the guest. */
  readonly workDir: string
  /** Envoy's own admin port on 127.0.0.1. */
  readonly adminPort?: number
  readonly envoyPath?: string
  /** Envoy's `--log-level`. */
  readonly logLevel?: 'trace' | 'debug' | 'info' | 'warning' | 'error' | 'critical'
  readonly backoff?: BackoffOptions
  /** After SIGTERM, how long Envoy gets before SIGKILL. */
  readonly killGraceMs?: number
  /** How often Envoy's counters are scraped into stats(); 0 turns the timer off (refreshStats() still works). */
  readonly statsIntervalMs?: number
  /** Envoy's worker threads (`--concurrency`); unset: Envoy's default, one per CPU of the guest. */
  readonly concurrency?: number
  readonly extraArgs?: readonly string[]
}

const ZERO_STATS: DataPlaneStats = {
  connectionsAccepted: {},
  connectionsActive: 0,
  handshakesCompleted: {},
  failures: {},
  bytesIn: 0,
  bytesOut: 0,
}

export class EnvoyDataPlane extends DataPlaneBase {
  readonly #opts: EnvoyDataPlaneOptions
  readonly #envoyLog: Logger
  readonly #bootstrapPath: string
  readonly #sdsDir: string
  readonly #adminPort: number
  readonly #backoff: BackoffOptions
  #material: TlsMaterial | undefined
  /**
   * The bootstrap is written, so credentials go to the SDS files from now on. Not the
   * state: credentials may arrive while start() is still between open() and `listening`.
   */
  #opened = false
  #child: ChildProcess | undefined
  #childExited: Promise<void> | undefined
  #restartTimer: NodeJS.Timeout | undefined
  #failures = 0
  #live = false
  #starts = 0
  /** Counters of Envoy processes that have exited; a new process starts from zero. */
  #carried: DataPlaneStats = ZERO_STATS
  #current: DataPlaneStats = ZERO_STATS
  #statsTimer: NodeJS.Timeout | undefined

  constructor(spec: DataPlaneSpec, opts: EnvoyDataPlaneOptions) {
    super(spec, opts.log, 'envoy')
    this.#opts = opts
    // Envoy's own lines; traced with the data plane, when Envoy logs its connections too.
    this.#envoyLog = opts.log.child({ component: 'envoy' }, this.log.isLevelEnabled('trace') ? { level: 'trace' } : {})
    this.#bootstrapPath = join(opts.workDir, 'bootstrap.json')
    this.#sdsDir = join(opts.workDir, 'sds')
    this.#adminPort = opts.adminPort ?? DEFAULT_ENVOY_ADMIN_PORT
    this.#backoff = opts.backoff ?? DEFAULT_BACKOFF
  }

  /** How many times Envoy was spawned (first start included). */
  get starts(): number {
    return this.#starts
  }

  get pid(): number | undefined {
    return this.#child?.pid
  }

  /**
   * The last scrape of Envoy's counters (every statsIntervalMs, and at close), plus the
   * totals of earlier Envoy processes, so counters stay monotonic across restarts.
   */
  stats(): DataPlaneStats {
    return addStats(this.#carried, this.#current)
  }

  /** True once the current Envoy process said LIVE on its admin /ready (listeners bound, secrets loaded). */
  get live(): boolean {
    return this.#live && this.state === 'serving'
  }

  /**
   * Unhealthy when closed, or crash-looping: CRASH_LOOP_EXITS exits in a row without a
   * run long enough to reset the backoff. One restart (SIGKILL, OOM) is not unhealthy.
   */
  override healthy(): boolean {
    return super.healthy() && this.#failures < CRASH_LOOP_EXITS
  }

  /** Scrapes Envoy's admin /stats now; resolves to the updated stats(). */
  override async refreshStats(): Promise<DataPlaneStats> {
    const child = this.#child
    if (child === undefined) return this.stats()
    const body = await this.#admin('GET', '/stats?format=json&usedonly')
    // A restart in between would attribute the old process's counters to the new one.
    if (this.#child === child) this.#current = statsFromEnvoy(this.spec, parseEnvoyStats(body))
    return this.stats()
  }

  // ---- lifecycle hooks (lifecycle.ts) ---------------------------------------------

  /** Renders and writes the bootstrap (and the SDS files, if credentials came first). */
  protected async open(): Promise<void> {
    const bootstrap = renderBootstrap(this.spec, { sdsDir: this.#sdsDir, adminPort: this.#adminPort })
    try {
      mkdirSync(this.#sdsDir, { recursive: true, mode: 0o700 })
    } catch (err) {
      throw new EnvoyError('ENVOY_WRITE', `cannot create ${this.#sdsDir}: ${(err as Error).message}`, { path: this.#sdsDir }, { cause: err })
    }
    writeEnvoyFile(this.#bootstrapPath, `${JSON.stringify(bootstrap, null, 2)}\n`, 0o644)
    if (this.#material !== undefined) writeSdsResources(this.#sdsDir, this.#material)
    this.#opened = true
  }

  /** Before open() only kept; afterwards the SDS files are replaced (by rename) and Envoy reloads them. */
  protected installCredentials(material: TlsMaterial): void {
    if (this.#opened) {
      writeSdsResources(this.#sdsDir, material)
      if (this.state === 'serving' || this.state === 'draining') this.log.info({ sdsDir: this.#sdsDir }, 'credentials rotated: SDS files replaced')
    }
    this.#material = material
  }

  protected serve(): void {
    this.#spawn()
    const every = this.#opts.statsIntervalMs ?? 10_000
    if (every > 0) {
      this.#statsTimer = setInterval(() => {
        this.refreshStats().catch((err: unknown) => this.log.debug({ err }, 'envoy stats scrape failed'))
      }, every)
      this.#statsTimer.unref()
    }
  }

  protected async drain(drainMs: number): Promise<void> {
    this.#stopStatsTimer()
    this.#cancelRestart()
    const child = this.#child
    if (child === undefined) return
    const exited = this.#childExited ?? Promise.resolve()
    // Inbound listeners stop accepting now (new SYNs meet the ruleset's drop), while
    // established connections keep flowing until drainMs is up; egress listeners keep
    // accepting to the end (lifecycle.ts). Istio adds `graceful`, which for TCP only
    // keeps inbound accepting during the drain; neither data plane does that.
    await this.#admin('POST', '/drain_listeners?inboundonly').catch((err: unknown) => {
      this.log.warn({ err }, 'envoy admin /drain_listeners failed; terminating without drain')
    })
    await this.#untilIdle(exited, drainMs)
    // Last look at the counters while Envoy still answers.
    await this.refreshStats().catch(() => undefined)
    if (this.#child === child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const graceMs = this.#opts.killGraceMs ?? 5_000
      if (!(await within(exited, graceMs))) {
        this.log.warn({ pid: child.pid, graceMs }, 'envoy ignored SIGTERM; killing')
        child.kill('SIGKILL')
        await exited
      }
    }
  }

  /**
   * Resolves once Envoy has exited, holds no connection on any listener, or drainMs is
   * up: as the builtin data plane, a drain ends early when there is nothing left to
   * drain. A scrape that fails counts as busy (the time limit still applies).
   */
  async #untilIdle(exited: Promise<void>, drainMs: number): Promise<void> {
    const deadline = performance.now() + drainMs
    for (;;) {
      const left = deadline - performance.now()
      if (left <= 0) return
      if (await within(exited, Math.min(DRAIN_POLL_MS, left))) return
      const stats = await this.refreshStats().catch(() => undefined)
      if (stats?.connectionsActive === 0) {
        this.log.info({ drainedInMs: Math.round(drainMs - left) }, 'no connection left; drain over')
        return
      }
    }
  }

  protected teardown(): void {
    this.#cancelRestart()
    this.#stopStatsTimer()
    this.#child?.kill('SIGKILL')
  }

  #stopStatsTimer(): void {
    if (this.#statsTimer !== undefined) clearInterval(this.#statsTimer)
    this.#statsTimer = undefined
  }

  #spawn(): void {
    const args = [
      '-c',
      this.#bootstrapPath,
      '--log-format',
      ENVOY_LOG_FORMAT,
      // Newlines inside a message become \n: one record per line for the parser below.
      '--log-format-escaped',
      '--log-level',
      this.#opts.logLevel ?? 'info',
      // A restart here is a fresh process, not a hot restart: no shared-memory region
      // that a second Envoy in the same VM (or a crashed one) could collide with.
      '--disable-hot-restart',
      '--drain-time-s',
      String(Math.max(1, Math.ceil(this.spec.timeouts.drainMs / 1000))),
      // MESH_TRACE=dataplane: Envoy's accept, TLS handshake and close decisions per
      // connection ([C<n>] ties them together), without its trace firehose.
      ...(this.log.isLevelEnabled('trace') && this.#opts.logLevel === undefined ? ['--component-log-level', 'conn_handler:debug,connection:debug'] : []),
      ...(this.#opts.concurrency === undefined ? [] : ['--concurrency', String(this.#opts.concurrency)]),
      ...(this.#opts.extraArgs ?? []),
    ]
    const envoyPath = this.#opts.envoyPath ?? 'envoy'
    const startedAt = performance.now()
    this.#starts++
    // Envoy dies with the daemon (SIGKILL on the daemon's death, through setpriv, which
    // execs it: same pid). An orphan would keep serving with a configuration no one
    // manages, and its admin port would make the next daemon's Envoy crash-loop. systemd
    // kills the unit's cgroup anyway; this covers every other way of running the daemon.
    const setpriv = SETPRIV !== undefined && executable(envoyPath)
    let child: ChildProcess
    try {
      child = setpriv
        ? spawn(SETPRIV!, ['--pdeathsig', 'KILL', '--', envoyPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
        : spawn(envoyPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    } catch (err) {
      // Node reports ENOENT and EACCES as an 'error' event but throws others (ENOMEM from
      // fork, bad arguments). Thrown out of a lifecycle hook or the restart timer, that
      // would leave `serving` with no process and no retry.
      this.#live = false
      this.#onExit(null, null, 0, err as Error)
      return
    }
    this.#child = child
    this.log.info({ pid: child.pid, envoyPath, start: this.#starts }, 'envoy spawned')
    this.#pipeLines(child)
    this.#live = false
    void this.#watchLive(child)
    let settle!: () => void
    this.#childExited = new Promise<void>((resolve) => (settle = resolve))
    let settled = false
    const onGone = (code: number | null, signal: NodeJS.Signals | null, err?: Error): void => {
      if (settled) return
      settled = true
      if (this.#child === child) {
        this.#child = undefined
        this.#live = false
      }
      this.#carried = addStats(this.#carried, { ...this.#current, connectionsActive: 0 })
      this.#current = ZERO_STATS
      settle()
      this.#onExit(code, signal, performance.now() - startedAt, err)
    }
    child.once('error', (err) => {
      // Spawn failure (ENOENT, EACCES): there will be no 'close' with an exit status.
      if (child.pid === undefined) onGone(null, null, err)
      else this.log.error({ err, pid: child.pid }, 'envoy process error')
    })
    child.once('close', (code, signal) => onGone(code, signal))
  }

  /** Polls /ready until this process says LIVE (or is replaced); then `live` is true. */
  async #watchLive(child: ChildProcess): Promise<void> {
    const startedAt = performance.now()
    while (this.#child === child && this.state === 'serving') {
      const body = await this.#admin('GET', '/ready').catch(() => '')
      if (body.trim() === 'LIVE' && this.#child === child) {
        this.#live = true
        this.log.info({ pid: child.pid, msToLive: Math.round(performance.now() - startedAt), start: this.#starts }, 'envoy live')
        return
      }
      await sleep(LIVE_POLL_MS)
    }
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null, ranMs: number, err?: Error): void {
    if (this.state !== 'serving') {
      this.log.info({ exitCode: code, signal }, 'envoy exited')
      return
    }
    if (ranMs >= this.#backoff.resetAfterMs) this.#failures = 0
    const delayMs = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** this.#failures)
    this.#failures++
    const fields = { exitCode: code, signal, ranMs: Math.round(ranMs), restartInMs: delayMs, failures: this.#failures }
    if (err !== undefined) {
      const spawnErr = new EnvoyError('ENVOY_SPAWN', `cannot run ${this.#opts.envoyPath ?? 'envoy'}: ${err.message}`, {}, { cause: err })
      this.log.error({ ...fields, err: spawnErr, code: spawnErr.code }, 'envoy could not be started; retrying')
    } else {
      this.log.error(fields, 'envoy exited unexpectedly; restarting')
    }
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined
      if (this.state === 'serving') this.#spawn()
    }, delayMs)
  }

  #cancelRestart(): void {
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer)
    this.#restartTimer = undefined
  }

  #pipeLines(child: ChildProcess): void {
    const pid = child.pid
    for (const stream of [child.stderr, child.stdout]) {
      if (stream === null) continue
      // A message spanning lines (config dumps) keeps the level of its first line.
      let level: (typeof PINO_LEVEL)[string] = 'info'
      let logger = ''
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        if (line === '') return
        const m = LOG_LINE_RE.exec(line)
        if (m !== null) {
          level = PINO_LEVEL[m[1] ?? 'info'] ?? 'info'
          logger = m[2] ?? ''
          this.#envoyLog[level]({ pid, envoyLogger: logger }, m[3] ?? '')
        } else {
          this.#envoyLog[level]({ pid, envoyLogger: logger, continued: true }, line)
        }
      })
    }
  }

  #admin(method: 'GET' | 'POST', path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: this.#adminPort, method, path, timeout: 1_000 }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8')
          if ((res.statusCode ?? 0) >= 300) reject(new Error(`admin ${path}: HTTP ${res.statusCode}`))
          else resolve(body)
        })
        res.on('error', reject)
      })
      req.on('timeout', () => req.destroy(new Error(`admin ${path}: timeout`)))
      req.on('error', reject)
      req.end()
    })
  }
}
