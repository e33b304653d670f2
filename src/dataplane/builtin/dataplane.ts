// The built-in data plane: Node's net/tls as an L4 mTLS proxy. Its lifecycle is
// lifecycle.ts's; this file binds the listeners and decides, per accepted connection,
// whether it may proceed and when. What happens next depends on the listener kind:
// ingress.ts (TLS in, plaintext to the pod), egress.ts (plaintext in, mTLS out),
// capture.ts (egress to the original destination), all through upstream.ts.
//
// Listeners are bound at start(), before credentials exist, so the workload never
// sees a refusal; connections accepted without credentials are held — paused, no
// byte read — until credentials arrive or timeouts.certificateWaitMs passes, then
// closed. Nothing is ever forwarded in plaintext from a TLS listener. Connections
// that have not authenticated yet (held, or in the handshake) are bounded per
// listener and per source address (admission.ts); refusal logs are rate-limited
// per reason (log-limit.ts), while the failure counters count every connection.
//
// Transparent listeners (ingress, egress capture) bind one dual-stack socket on
// `::` with IPV6_TRANSPARENT: nft `tproxy` in an inet table finds it for IPv4
// packets too (verified in a network namespace; accepted IPv4 connections report
// `::ffff:a.b.c.d` addresses, unmapped here). Where the kernel has no IPv6 the
// listener falls back to `0.0.0.0` with IP_TRANSPARENT.

import net from 'node:net'
import type { Logger } from 'pino'
import { MESH_SOCKET_MARK } from '../../config/index.js'
import type { TlsMaterial, TlsMaterialInfo } from '../../pki/index.js'
import type { DataPlaneStats } from '../dataplane.js'
import { DataPlaneError, isDataPlaneError } from '../errors.js'
import { DataPlaneBase } from '../lifecycle.js'
import { DEFAULT_PENDING_LIMITS, type DataPlaneSpec, type ListenerSpec, type PendingLimits } from '../spec.js'
import { PendingConnections } from './admission.js'
import { serveCapture } from './capture.js'
import { Connection, errCode, type FailureReason, type ProxyContext } from './connection.js'
import { buildCredentials, type Credentials } from './credentials.js'
import { serveEgress } from './egress.js'
import { splice, type Leg } from './forward.js'
import { serveIngress } from './ingress.js'
import { LocalAddresses } from './local-addresses.js'
import { unmapAddress } from './peer-name.js'
import { DEFAULT_LOG_LIMIT, LogLimiter, type Clock, type LogLimitOptions } from '../../log-limit.js'
import { setServerTransparent, type IpFamily } from './socket-options.js'
import { UpstreamResolver } from './upstream-resolver.js'

export interface BuiltinDataPlaneOptions {
  readonly log: Logger
  /**
   * SO_MARK on every socket the data plane opens, so the ruleset exempts the mesh's
   * own traffic. `null` opens unmarked sockets: only for tests without CAP_NET_ADMIN.
   */
  readonly socketMark?: number | null
  /**
   * IP(V6)_TRANSPARENT on ingress and egress-capture listeners. `false` binds them as
   * ordinary listeners (tproxy cannot deliver to them): only for tests without
   * CAP_NET_ADMIN.
   */
  readonly transparent?: boolean
  /** Bound on client-side TLS session cache entries. */
  readonly sessionCacheEntries?: number
  /** Bounds on unauthenticated connections (admission.ts); unset fields keep their defaults. */
  readonly limits?: Partial<PendingLimits>
  /** Per-reason rate limit of per-connection failure logs. */
  readonly refusalLog?: LogLimitOptions
  /** Time for the log rate limit; tests inject one. */
  readonly clock?: Clock
}

export interface BoundAddress {
  readonly address: string
  readonly port: number
}

interface BoundListener {
  readonly spec: ListenerSpec
  readonly server: net.Server
  readonly address: BoundAddress
}

interface Held {
  readonly listener: ListenerSpec
  readonly timer: NodeJS.Timeout
  readonly proceed: () => void
}

function listen(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening)
      reject(err)
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(options)
  })
}

export class BuiltinDataPlane extends DataPlaneBase {
  readonly #transparent: boolean
  readonly #sessionCacheEntries: number | undefined
  readonly #context: ProxyContext
  #listeners: BoundListener[] = []
  #credentials: Credentials | undefined
  readonly #localAddresses = new LocalAddresses()
  readonly #conns = new Set<Connection>()
  readonly #held = new Map<Connection, Held>()
  readonly #pending: PendingConnections
  /** Ends the pending phase of a connection (admission.ts), until it authenticated or closed. */
  readonly #release = new Map<Connection, () => void>()
  readonly #logLimit: LogLimiter
  #nextConnId = 1
  /** Set while drain() waits: called when the last connection is gone. */
  #drained: (() => void) | undefined

  readonly #accepted: Record<string, number> = Object.create(null)
  readonly #handshakes: Record<string, number> = Object.create(null)
  readonly #failures: Record<string, number> = Object.create(null)
  #bytesIn = 0
  #bytesOut = 0

  constructor(spec: DataPlaneSpec, opts: BuiltinDataPlaneOptions) {
    super(spec, opts.log, 'builtin')
    const names = new Set<string>()
    for (const l of spec.listeners) {
      if (names.has(l.name)) {
        throw new DataPlaneError('DATAPLANE_SPEC', `listener name ${l.name} appears twice`, { listener: l.name })
      }
      names.add(l.name)
    }
    this.#transparent = opts.transparent ?? true
    this.#sessionCacheEntries = opts.sessionCacheEntries
    this.#pending = new PendingConnections({ ...DEFAULT_PENDING_LIMITS, ...opts.limits })
    this.#logLimit = new LogLimiter(
      (reason, suppressed, intervalMs) =>
        this.log.warn({ reason, suppressed, intervalMs }, `${suppressed} more connection failures (${reason}) not logged`),
      opts.refusalLog ?? DEFAULT_LOG_LIMIT,
      opts.clock,
    )
    this.#context = {
      log: this.log,
      timeouts: spec.timeouts,
      socketMark: opts.socketMark === undefined ? MESH_SOCKET_MARK : opts.socketMark,
      resolver: new UpstreamResolver(),
      credentials: () => this.#credentials,
      fail: (conn, reason, fields) => this.#fail(conn, reason, fields),
      handshakeCompleted: (conn) => {
        this.#leavePending(conn)
        this.#handshakes[conn.listener] = (this.#handshakes[conn.listener] ?? 0) + 1
      },
      splice: (conn, down, up) => this.#splice(conn, down, up),
    }
  }

  get live(): boolean {
    return this.state === 'serving'
  }

  stats(): DataPlaneStats {
    return {
      connectionsAccepted: { ...this.#accepted },
      connectionsActive: this.#conns.size,
      connectionsPending: this.#pending.count(),
      handshakesCompleted: { ...this.#handshakes },
      failures: { ...this.#failures },
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
    }
  }

  /** Where each listener is bound, by listener name (a spec port 0 becomes the kernel's choice). */
  addresses(): Readonly<Record<string, BoundAddress>> {
    const out: Record<string, BoundAddress> = Object.create(null)
    for (const l of this.#listeners) out[l.spec.name] = l.address
    return out
  }

  // ---- lifecycle hooks (lifecycle.ts) ---------------------------------------------

  /** Binds every listener, or none: one that fails releases those bound before it. */
  protected async open(): Promise<void> {
    const bound: BoundListener[] = []
    try {
      for (const l of this.spec.listeners) bound.push(await this.#bind(l))
    } catch (err) {
      for (const b of bound) b.server.close()
      throw err
    }
    this.#listeners = bound
  }

  /** One credential generation: contexts built once, shared by every new connection. */
  protected installCredentials(material: TlsMaterial, info: TlsMaterialInfo): void {
    const creds = buildCredentials(material, (this.#credentials?.generation ?? 0) + 1, {
      serverListeners: this.spec.listeners.filter((l) => l.kind === 'ingress').map((l) => l.name),
      sessionCacheEntries: this.#sessionCacheEntries,
    })
    this.#credentials = creds
    this.log.info({ generation: creds.generation, leaf: { subject: info.subject, sans: info.sans, notAfter: info.notAfter, fingerprint256: info.fingerprint256 } }, 'credentials installed')
    // Held egress connections may still go out during a drain: release them here too.
    if (this.state === 'draining') this.#releaseHeld()
  }

  protected serve(): void {
    this.#releaseHeld()
  }

  /** Inbound stops now (held inbound connections with it); egress serves to the end. */
  protected async drain(drainMs: number): Promise<void> {
    this.#closeListeners((l) => l.kind === 'ingress')
    this.#dropHeld((l) => l.kind === 'ingress')
    if (this.#conns.size === 0) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, drainMs)
      this.#drained = () => {
        clearTimeout(timer)
        resolve()
      }
    })
    this.#drained = undefined
    if (this.#conns.size > 0) this.log.info({ remaining: this.#conns.size }, 'drain time over, destroying connections')
  }

  protected teardown(): void {
    this.#closeListeners(() => true)
    this.#dropHeld(() => true)
    for (const c of [...this.#conns]) c.destroy()
    this.#logLimit.flush()
    this.#drained?.()
  }

  #closeListeners(which: (l: ListenerSpec) => boolean): void {
    for (const l of this.#listeners) if (which(l.spec)) l.server.close()
  }

  #releaseHeld(): void {
    const held = [...this.#held]
    this.#held.clear()
    for (const [conn, h] of held) {
      clearTimeout(h.timer)
      if (!conn.closed) h.proceed()
    }
    if (held.length > 0) this.log.info({ released: held.length }, 'released held connections')
  }

  #dropHeld(which: (l: ListenerSpec) => boolean): void {
    for (const [conn, h] of [...this.#held]) {
      if (!which(h.listener)) continue
      this.#held.delete(conn)
      clearTimeout(h.timer)
      conn.destroy()
    }
  }

  // ---- listeners -------------------------------------------------------------

  async #bind(l: ListenerSpec): Promise<BoundListener> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true })
    let host: string
    let family: IpFamily
    try {
      if (l.kind === 'egress') {
        host = l.address
        family = net.isIPv6(host) ? 6 : 4
        await listen(server, { host, port: l.port, exclusive: true })
      } else {
        host = '::'
        family = 6
        try {
          await listen(server, { host, port: l.port, ipv6Only: false, exclusive: true })
        } catch (err) {
          if (errCode(err) !== 'EAFNOSUPPORT' && errCode(err) !== 'EADDRNOTAVAIL') throw err
          host = '0.0.0.0'
          family = 4
          await listen(server, { host, port: l.port, exclusive: true })
        }
      }
    } catch (cause) {
      const address = l.kind === 'egress' ? l.address : '::'
      const errno = errCode(cause) ?? 'unknown'
      throw new DataPlaneError(
        'DATAPLANE_BIND',
        `listener ${l.name}: cannot bind ${address}:${l.port}: ${errno}`,
        { listener: l.name, address, port: l.port, errno },
        { cause },
      )
    }
    if (l.kind !== 'egress' && this.#transparent) {
      try {
        setServerTransparent(server, family)
      } catch (cause) {
        server.close()
        const details = isDataPlaneError(cause) ? cause.details : {}
        throw new DataPlaneError('DATAPLANE_SOCKOPT', `listener ${l.name}: cannot make it transparent`, { ...details, listener: l.name }, { cause })
      }
    }
    const info = server.address() as net.AddressInfo
    const address: BoundAddress = { address: info.address, port: info.port }
    const loopGuard = new Set<number>(l.kind === 'egress' ? [] : [...l.loopGuardPorts, info.port])
    server.on('connection', (raw: net.Socket) => this.#accept(l, loopGuard, raw))
    server.on('error', (err) => this.log.error({ err, listener: l.name }, 'listener error'))
    this.log.info({ listener: l.name, kind: l.kind, address, transparent: l.kind !== 'egress' && this.#transparent }, 'listener bound')
    return { spec: l, server, address }
  }

  // ---- per connection: may it proceed, and when ----------------------------------

  #accept(l: ListenerSpec, loopGuard: ReadonlySet<number>, raw: net.Socket): void {
    this.#accepted[l.name] = (this.#accepted[l.name] ?? 0) + 1
    const conn = new Connection(this.#nextConnId++, l.name, (c) => this.#connectionDone(c))
    this.#conns.add(conn)
    conn.add(raw)
    // MESH_TRACE=dataplane: every connection's decisions, as `conn` numbers tie them together.
    if (this.log.isLevelEnabled('trace')) {
      this.log.trace(
        { listener: l.name, conn: conn.id, peer: { address: raw.remoteAddress, port: raw.remotePort }, destination: { address: raw.localAddress, port: raw.localPort }, state: this.state },
        'connection accepted',
      )
    }
    if (this.state === 'closed' || (this.state === 'draining' && l.kind === 'ingress')) {
      // Accepted in the same turn as close(): nothing will serve it.
      conn.destroy()
      return
    }
    if (l.kind !== 'egress') {
      const port = raw.localPort
      if (port === undefined || loopGuard.has(port)) {
        this.#fail(conn, 'LOOP', { destination: { address: raw.localAddress, port } })
        conn.destroy()
        return
      }
    }
    // Deliver only to the pod itself: whatever the ruleset let through, a decrypted
    // stream is never relayed to an address that is not the pod's own. Refused before
    // any TLS, so a misdirected client does not even get a session.
    if (l.kind === 'ingress' && !this.#localAddresses.isLocal(raw.localAddress ?? '')) {
      this.#fail(conn, 'NOT_LOCAL', { destination: { address: raw.localAddress, port: raw.localPort }, peer: { address: raw.remoteAddress, port: raw.remotePort } })
      conn.destroy()
      return
    }
    // Only network-facing listeners are bounded per source: on the others every
    // connection comes from the workload itself.
    const source = l.kind === 'ingress' ? unmapAddress(raw.remoteAddress ?? '') : undefined
    const admission = this.#pending.admit(l.name, source, () => {
      this.#fail(conn, 'PENDING_SHED', { peer: { address: source ?? raw.remoteAddress }, pending: this.#pending.count(l.name) })
      conn.destroy()
    })
    if (!admission.admitted) {
      this.#fail(conn, admission.reason, { peer: { address: source } })
      conn.destroy()
      return
    }
    this.#release.set(conn, admission.release)
    const proceed = (): void => this.#serve(l, conn, raw)
    if (this.#credentials !== undefined && (this.state === 'serving' || this.state === 'draining')) {
      proceed()
      return
    }
    this.#held.set(conn, {
      listener: l,
      proceed,
      timer: setTimeout(() => {
        this.#held.delete(conn)
        if (conn.closed) return
        this.#fail(conn, 'CERTIFICATE_WAIT', { waitedMs: this.spec.timeouts.certificateWaitMs })
        conn.destroy()
      }, this.spec.timeouts.certificateWaitMs),
    })
  }

  #serve(l: ListenerSpec, conn: Connection, raw: net.Socket): void {
    switch (l.kind) {
      case 'ingress':
        serveIngress(this.#context, l, conn, raw)
        break
      case 'egress':
        serveEgress(this.#context, l, conn, raw)
        break
      case 'egress-capture':
        serveCapture(this.#context, conn, raw)
        break
    }
  }

  #connectionDone(conn: Connection): void {
    this.#conns.delete(conn)
    this.#leavePending(conn)
    const held = this.#held.get(conn)
    if (held !== undefined) {
      clearTimeout(held.timer)
      this.#held.delete(conn)
    }
    const bytes = conn.bytes?.()
    if (this.log.isLevelEnabled('trace')) this.log.trace({ listener: conn.listener, conn: conn.id, bytes, state: this.state }, 'connection closed')
    if (bytes !== undefined) {
      this.#bytesIn += bytes.in
      this.#bytesOut += bytes.out
    }
    if (this.#conns.size === 0) this.#drained?.()
  }

  /** The connection no longer counts against the pending bounds (it authenticated, or it is gone). */
  #leavePending(conn: Connection): void {
    this.#release.get(conn)?.()
    this.#release.delete(conn)
  }

  #fail(conn: Connection, reason: FailureReason, fields: Record<string, unknown> = {}): void {
    this.#failures[reason] = (this.#failures[reason] ?? 0) + 1
    if (!this.#logLimit.allow(reason)) return
    const level = reason === 'SAN_MISMATCH' || reason === 'UNTRUSTED_PEER' || reason === 'NOT_LOCAL' ? 'warn' : 'info'
    this.log[level]({ listener: conn.listener, conn: conn.id, reason, ...fields }, `connection failed: ${reason}`)
  }

  #splice(conn: Connection, down: Leg, up: Leg): void {
    conn.spliced = true
    splice(down, up, (from, err) => {
      this.#failures.RESET = (this.#failures.RESET ?? 0) + 1
      this.log.debug({ listener: conn.listener, conn: conn.id, from: from === 'a' ? 'downstream' : 'upstream', code: errCode(err) }, 'reset propagated')
    })
  }
}
