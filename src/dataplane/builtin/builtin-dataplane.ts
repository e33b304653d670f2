// The built-in data plane: Node's net/tls as an L4 mTLS proxy.
//
//   created --start()--> listening --setCredentials()--> serving
//   created|listening|serving --close()--> draining --(drained or drainMs)--> closed
//   any --destroy()--> closed
//
// Listeners are bound at start(), before credentials exist, so the workload never
// sees a refusal; connections accepted without credentials are held — paused, no
// byte read — until credentials arrive or timeouts.certificateWaitMs passes, then
// closed. Nothing is ever forwarded in plaintext from a TLS listener. Connections
// that have not authenticated yet (held, or in the handshake) are bounded per
// listener and per source address (admission.ts); refusal logs are rate-limited
// per reason (refusal-log.ts), while the failure counters count every connection.
//
// Transparent listeners (ingress, egress capture) bind one dual-stack socket on
// `::` with IPV6_TRANSPARENT: nft `tproxy` in an inet table finds it for IPv4
// packets too (verified in a network namespace; accepted IPv4 connections report
// `::ffff:a.b.c.d` addresses, unmapped here). Where the kernel has no IPv6 the
// listener falls back to `0.0.0.0` with IP_TRANSPARENT.

import net from 'node:net'
import tls from 'node:tls'
import type { Logger } from 'pino'
import { MESH_SOCKET_MARK } from '../../config/index.js'
import type { DataPlane, DataPlaneState, DataPlaneStats, TlsMaterial } from '../dataplane.js'
import { DataPlaneError, isDataPlaneError } from '../errors.js'
import {
  DEFAULT_PENDING_LIMITS,
  type DataPlaneSpec,
  type EgressCaptureListenerSpec,
  type EgressListenerSpec,
  type IngressListenerSpec,
  type ListenerSpec,
  type PendingLimits,
} from '../spec.js'
import { PendingConnections } from './admission.js'
import { Connection } from './connection.js'
import { buildCredentials, type Credentials } from './credentials.js'
import { resetLeg, splice, type Leg } from './forward.js'
import { certificateHasName, certificateNames, isIpLiteral, unmapAddress } from './peer-name.js'
import { LocalAddresses } from './local-addresses.js'
import { DEFAULT_LOG_LIMIT, LogLimiter, type Clock, type LogLimitOptions } from './refusal-log.js'
import { createMarkedSocket, setServerTransparent, type IpFamily } from './socket-options.js'
import { UpstreamResolver } from './upstream-resolver.js'
import { pollUntilLive } from '../wait-live.js'

/** Why a connection was refused or failed; the key of DataPlaneStats.failures. */
export type FailureReason =
  /** Original destination port is a mesh port: the connection would loop through the proxy. */
  | 'LOOP'
  /** Ingress whose original destination is not an address of this pod: forwarding would relay it off the pod. */
  | 'NOT_LOCAL'
  /** Held connection: no credentials arrived within timeouts.certificateWaitMs. */
  | 'CERTIFICATE_WAIT'
  | 'TLS_HANDSHAKE'
  | 'HANDSHAKE_TIMEOUT'
  /** Ingress with client auth: the client sent no certificate. */
  | 'NO_CLIENT_CERT'
  /** The peer's chain does not lead to the mesh CA (either direction). */
  | 'UNTRUSTED_PEER'
  /** Secure naming: the upstream certificate does not carry the expected name. */
  | 'SAN_MISMATCH'
  /** Upstream name resolution, socket creation, connect error or connect timeout. */
  | 'UPSTREAM_CONNECT'
  /** An established connection was reset; the reset was propagated to the other side. */
  | 'RESET'
  /** Refused at accept: its source address already had limits.pendingPerSource pending connections. */
  | 'PENDING_PER_SOURCE'
  /** Shed while still unauthenticated: the oldest pending one when its listener reached limits.pendingPerListener. */
  | 'PENDING_SHED'

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
  /** Called after each state change, never synchronously inside the triggering call. */
  readonly onStateChange?: (prev: DataPlaneState, next: DataPlaneState) => void
}

export interface BoundAddress {
  readonly address: string
  readonly port: number
}

export interface BuiltinDataPlane extends DataPlane {
  /** Where each listener is bound, by listener name (a spec port 0 becomes the kernel's choice). */
  addresses(): Readonly<Record<string, BoundAddress>>
}

export function createBuiltinDataPlane(spec: DataPlaneSpec, opts: BuiltinDataPlaneOptions): BuiltinDataPlane {
  return new BuiltinDataPlaneImpl(spec, opts)
}

interface BoundListener {
  readonly spec: ListenerSpec
  readonly server: net.Server
  readonly address: BoundAddress
}

interface Held {
  readonly timer: NodeJS.Timeout
  readonly proceed: () => void
}

interface Target {
  readonly host: string
  readonly port: number
  /** undefined: mesh CA only (an explicit per-entry opt-out of secure naming). */
  readonly verifyName: string | undefined
}

// OpenSSL X509 verification results as Node reports them (err.code).
const X509_VERIFY_CODE = /^(UNABLE_TO_|CERT_|SELF_SIGNED|DEPTH_ZERO|INVALID_|PATH_LENGTH|KEYUSAGE|ERR_TLS_CERT_ALTNAME)/

function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

/**
 * The verification result of the client certificate on a server-side TLSSocket.
 * Node verifies during the handshake but, for a TLSSocket not created by tls.Server,
 * only exposes the result on the native handle (tls.Server reads the same call).
 * If that ever disappears, fail closed.
 */
function clientVerifyError(socket: tls.TLSSocket): Error | undefined {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => Error | null | undefined } })._handle
  if (typeof handle?.verifyError !== 'function') return new Error('client certificate verification result unavailable')
  return handle.verifyError() ?? undefined
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

class BuiltinDataPlaneImpl implements BuiltinDataPlane {
  readonly #spec: DataPlaneSpec
  readonly #log: Logger
  readonly #socketMark: number | null
  readonly #transparent: boolean
  readonly #sessionCacheEntries: number | undefined
  readonly #onStateChange: BuiltinDataPlaneOptions['onStateChange']

  #state: DataPlaneState = 'created'
  #starting = false
  #listeners: BoundListener[] = []
  #credentials: Credentials | undefined
  #generation = 0
  readonly #resolver = new UpstreamResolver()
  readonly #localAddresses = new LocalAddresses()
  readonly #conns = new Set<Connection>()
  readonly #held = new Map<Connection, Held>()
  readonly #pending: PendingConnections
  /** Ends the pending phase of a connection (admission.ts), until it authenticated or closed. */
  readonly #release = new Map<Connection, () => void>()
  readonly #logLimit: LogLimiter
  #nextConnId = 1
  #closing: Promise<void> | undefined
  #drained: (() => void) | undefined

  readonly #accepted: Record<string, number> = Object.create(null)
  readonly #handshakes: Record<string, number> = Object.create(null)
  readonly #failures: Record<string, number> = Object.create(null)
  #bytesIn = 0
  #bytesOut = 0

  constructor(spec: DataPlaneSpec, opts: BuiltinDataPlaneOptions) {
    this.#spec = spec
    this.#log = opts.log.child({ component: 'dataplane', impl: 'builtin' })
    this.#socketMark = opts.socketMark === undefined ? MESH_SOCKET_MARK : opts.socketMark
    this.#transparent = opts.transparent ?? true
    this.#sessionCacheEntries = opts.sessionCacheEntries
    this.#onStateChange = opts.onStateChange
    this.#pending = new PendingConnections({ ...DEFAULT_PENDING_LIMITS, ...opts.limits })
    this.#logLimit = new LogLimiter(
      (reason, suppressed, intervalMs) =>
        this.#log.warn({ reason, suppressed, intervalMs }, `${suppressed} more connection failures (${reason}) not logged`),
      opts.refusalLog ?? DEFAULT_LOG_LIMIT,
      opts.clock,
    )
    const names = new Set<string>()
    for (const l of spec.listeners) {
      if (names.has(l.name)) {
        throw new DataPlaneError('DATAPLANE_SPEC', `listener name ${l.name} appears twice`, { listener: l.name })
      }
      names.add(l.name)
    }
  }

  get state(): DataPlaneState {
    return this.#state
  }

  // ---- lifecycle -------------------------------------------------------------

  #transition(from: readonly DataPlaneState[], to: DataPlaneState): void {
    const prev = this.#state
    if (!from.includes(prev)) {
      throw new DataPlaneError('DATAPLANE_STATE', `illegal transition ${prev} -> ${to}`, { from: prev, to })
    }
    this.#state = to
    this.#log.info({ from: prev, to }, `${prev} -> ${to}`)
    switch (to) {
      case 'serving':
        this.#releaseHeld()
        break
      case 'draining':
        this.#stopAccepting()
        this.#dropHeld()
        break
      case 'closed':
        this.#stopAccepting()
        this.#dropHeld()
        for (const c of [...this.#conns]) c.destroy()
        this.#logLimit.flush()
        this.#drained?.()
        break
      default:
        break
    }
    const notify = this.#onStateChange
    if (notify !== undefined) queueMicrotask(() => notify(prev, to))
  }

  async start(): Promise<void> {
    if (this.#state !== 'created' || this.#starting) {
      throw new DataPlaneError('DATAPLANE_STATE', `start() in state ${this.#state}${this.#starting ? ' (already starting)' : ''}`, {
        from: this.#state,
        to: 'listening',
      })
    }
    this.#starting = true
    const bound: BoundListener[] = []
    try {
      for (const l of this.#spec.listeners) bound.push(await this.#bind(l))
    } catch (err) {
      for (const b of bound) b.server.close()
      throw err
    } finally {
      this.#starting = false
    }
    if (this.#state !== 'created') {
      // close() or destroy() ran while binding.
      for (const b of bound) b.server.close()
      throw new DataPlaneError('DATAPLANE_STATE', `stopped while starting (now ${this.#state})`, { from: this.#state, to: 'listening' })
    }
    this.#listeners = bound
    this.#transition(['created'], 'listening')
    if (this.#credentials !== undefined) this.#transition(['listening'], 'serving')
  }

  setCredentials(material: TlsMaterial): void {
    if (this.#state === 'closed') {
      throw new DataPlaneError('DATAPLANE_STATE', 'setCredentials() after close', { from: this.#state, to: this.#state })
    }
    const creds = buildCredentials(material, this.#generation + 1, {
      serverListeners: this.#spec.listeners.filter((l) => l.kind === 'ingress').map((l) => l.name),
      ...(this.#sessionCacheEntries !== undefined ? { sessionCacheEntries: this.#sessionCacheEntries } : {}),
    })
    this.#generation = creds.generation
    this.#credentials = creds
    this.#log.info({ generation: creds.generation, leaf: creds.leaf }, 'credentials installed')
    if (this.#state === 'listening') this.#transition(['listening'], 'serving')
  }

  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing
    if (this.#state === 'closed') return Promise.resolve()
    this.#closing = this.#drain()
    return this.#closing
  }

  async #drain(): Promise<void> {
    this.#transition(['created', 'listening', 'serving'], 'draining')
    if (this.#conns.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#spec.timeouts.drainMs)
        this.#drained = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.#drained = undefined
    }
    if (this.#state === 'draining') {
      if (this.#conns.size > 0) this.#log.info({ remaining: this.#conns.size }, 'drain time over, destroying connections')
      this.#transition(['draining'], 'closed')
    }
  }

  destroy(err?: Error): void {
    if (this.#state === 'closed') return
    if (err !== undefined) this.#log.warn({ err }, 'destroyed')
    this.#transition(['created', 'listening', 'serving', 'draining'], 'closed')
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
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

  get live(): boolean {
    return this.#state === 'serving'
  }

  healthy(): boolean {
    return this.#state !== 'closed'
  }

  whenLive(signal?: AbortSignal): Promise<void> {
    return pollUntilLive(this, signal)
  }

  refreshStats(): Promise<DataPlaneStats> {
    return Promise.resolve(this.stats())
  }

  addresses(): Readonly<Record<string, BoundAddress>> {
    const out: Record<string, BoundAddress> = Object.create(null)
    for (const l of this.#listeners) out[l.spec.name] = l.address
    return out
  }

  #stopAccepting(): void {
    for (const l of this.#listeners) l.server.close()
  }

  #releaseHeld(): void {
    const held = [...this.#held]
    this.#held.clear()
    for (const [conn, h] of held) {
      clearTimeout(h.timer)
      if (!conn.closed) h.proceed()
    }
    if (held.length > 0) this.#log.info({ released: held.length }, 'released held connections')
  }

  #dropHeld(): void {
    const held = [...this.#held]
    this.#held.clear()
    for (const [conn, h] of held) {
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
    server.on('error', (err) => this.#log.error({ err, listener: l.name }, 'listener error'))
    this.#log.info({ listener: l.name, kind: l.kind, address, transparent: l.kind !== 'egress' && this.#transparent }, 'listener bound')
    return { spec: l, server, address }
  }

  #accept(l: ListenerSpec, loopGuard: ReadonlySet<number>, raw: net.Socket): void {
    this.#accepted[l.name] = (this.#accepted[l.name] ?? 0) + 1
    const conn = new Connection(this.#nextConnId++, l.name, (c) => this.#connectionDone(c))
    this.#conns.add(conn)
    conn.add(raw)
    // MESH_TRACE=dataplane: every connection's decisions, as `conn` numbers tie them together.
    if (this.#log.isLevelEnabled('trace')) {
      this.#log.trace(
        { listener: l.name, conn: conn.id, peer: { address: raw.remoteAddress, port: raw.remotePort }, destination: { address: raw.localAddress, port: raw.localPort }, state: this.#state },
        'connection accepted',
      )
    }
    if (this.#state === 'draining' || this.#state === 'closed') {
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
    if (this.#state === 'serving' && this.#credentials !== undefined) {
      proceed()
      return
    }
    this.#held.set(conn, {
      proceed,
      timer: setTimeout(() => {
        this.#held.delete(conn)
        if (conn.closed) return
        this.#fail(conn, 'CERTIFICATE_WAIT', { waitedMs: this.#spec.timeouts.certificateWaitMs })
        conn.destroy()
      }, this.#spec.timeouts.certificateWaitMs),
    })
  }

  /** The connection proved who it is: it no longer counts against the pending limits. */
  #authenticated(conn: Connection): void {
    this.#release.get(conn)?.()
    this.#release.delete(conn)
  }

  #serve(l: ListenerSpec, conn: Connection, raw: net.Socket): void {
    switch (l.kind) {
      case 'ingress':
        this.#serveIngress(l, conn, raw)
        break
      case 'egress':
        void this.#originate(conn, raw, { host: l.upstream.host, port: l.upstream.port, verifyName: l.verifyName })
        break
      case 'egress-capture':
        this.#serveCapture(l, conn, raw)
        break
    }
  }

  #connectionDone(conn: Connection): void {
    this.#conns.delete(conn)
    this.#authenticated(conn)
    const held = this.#held.get(conn)
    if (held !== undefined) {
      clearTimeout(held.timer)
      this.#held.delete(conn)
    }
    const bytes = conn.bytes?.()
    if (this.#log.isLevelEnabled('trace')) this.#log.trace({ listener: conn.listener, conn: conn.id, bytes, state: this.#state }, 'connection closed')
    if (bytes !== undefined) {
      this.#bytesIn += bytes.in
      this.#bytesOut += bytes.out
    }
    if (this.#conns.size === 0) this.#drained?.()
  }

  #fail(conn: Connection, reason: FailureReason, fields: Record<string, unknown> = {}): void {
    this.#failures[reason] = (this.#failures[reason] ?? 0) + 1
    if (!this.#logLimit.allow(reason)) return
    const level = reason === 'SAN_MISMATCH' || reason === 'UNTRUSTED_PEER' || reason === 'NOT_LOCAL' ? 'warn' : 'info'
    this.#log[level]({ listener: conn.listener, conn: conn.id, reason, ...fields }, `connection failed: ${reason}`)
  }

  // ---- ingress: TLS in, plaintext to the original destination -------------------

  #serveIngress(l: IngressListenerSpec, conn: Connection, raw: net.Socket): void {
    const context = this.#credentials?.servers.get(l.name)
    const destination = raw.localAddress
    const port = raw.localPort
    if (context === undefined || destination === undefined || port === undefined) {
      conn.destroy()
      return
    }
    const peer = { address: raw.remoteAddress, port: raw.remotePort }
    const secure = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: context,
      requestCert: l.requireClientCert,
      rejectUnauthorized: l.requireClientCert,
    })
    conn.forget(raw)
    conn.add(secure)
    let done = false
    const timer = setTimeout(() => {
      if (done || conn.closed) return
      done = true
      this.#fail(conn, 'HANDSHAKE_TIMEOUT', { peer, afterMs: this.#spec.timeouts.handshakeMs })
      conn.destroy()
    }, this.#spec.timeouts.handshakeMs)
    // A shed or reset connection must not keep its timer (and through it the socket) alive.
    secure.once('close', () => clearTimeout(timer))
    // A client that leaves before the handshake is over: a server TLSSocket reports the
    // end but never closes by itself, and would sit out handshakeMs (connect-and-close
    // is the cheapest flood there is).
    secure.once('end', () => {
      if (done) return
      done = true
      clearTimeout(timer)
      this.#fail(conn, 'TLS_HANDSHAKE', { peer, code: 'EOF_BEFORE_HANDSHAKE' })
      conn.destroy()
    })
    secure.once('error', (err) => {
      if (done) return
      done = true
      clearTimeout(timer)
      const code = errCode(err)
      const reason: FailureReason = code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' ? 'NO_CLIENT_CERT' : 'TLS_HANDSHAKE'
      this.#fail(conn, reason, { peer, code })
    })
    secure.once('secure', () => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (l.requireClientCert) {
        const verifyError = clientVerifyError(secure)
        const cert = secure.getPeerX509Certificate()
        if (cert === undefined) {
          this.#fail(conn, 'NO_CLIENT_CERT', { peer })
          conn.destroy()
          return
        }
        if (verifyError !== undefined) {
          this.#fail(conn, 'UNTRUSTED_PEER', { peer: { ...peer, names: certificateNames(cert), issuer: cert.issuer }, code: errCode(verifyError) })
          conn.destroy()
          return
        }
      }
      this.#authenticated(conn)
      this.#handshakes[l.name] = (this.#handshakes[l.name] ?? 0) + 1
      if (this.#log.isLevelEnabled('debug')) {
        const cert = secure.getPeerX509Certificate()
        this.#log.debug(
          {
            listener: l.name,
            conn: conn.id,
            peer: { ...peer, names: cert === undefined ? undefined : certificateNames(cert) },
            destination: { address: destination, port },
            protocol: secure.getProtocol(),
            resumed: secure.isSessionReused(),
          },
          'ingress handshake completed',
        )
      }
      this.#connect(conn, { host: unmapAddress(destination), port }, (app) => {
        const down: Leg = { stream: secure, tcp: raw }
        const up: Leg = { stream: app, tcp: app }
        conn.bytes = () => ({ in: app.bytesWritten, out: app.bytesRead })
        this.#splice(conn, down, up)
      })
    })
  }

  // ---- egress: plaintext in, mTLS out -------------------------------------------

  #serveCapture(_l: EgressCaptureListenerSpec, conn: Connection, raw: net.Socket): void {
    const destination = raw.localAddress
    const port = raw.localPort
    if (destination === undefined || port === undefined) {
      conn.destroy()
      return
    }
    const host = unmapAddress(destination)
    void this.#originate(conn, raw, { host, port, verifyName: host })
  }

  async #originate(conn: Connection, app: net.Socket, target: Target): Promise<void> {
    const creds = this.#credentials
    if (creds === undefined) {
      conn.destroy()
      return
    }
    const appLeg: Leg = { stream: app, tcp: app }
    let address = target.host
    if (!isIpLiteral(address)) {
      try {
        address = await this.#resolver.resolve(address)
      } catch (err) {
        if (conn.closed) return
        this.#fail(conn, 'UPSTREAM_CONNECT', { upstream: target, code: errCode(err) })
        resetLeg(appLeg)
        conn.destroy()
        return
      }
      if (conn.closed) return
    }
    const sessionKey = `${target.host}|${target.port}|${target.verifyName}`
    this.#connect(
      conn,
      { host: address, port: target.port },
      (tcp) => {
        const secure = tls.connect({
          socket: tcp,
          secureContext: creds.client,
          servername: isIpLiteral(target.host) ? undefined : target.host,
          session: creds.sessions.get(sessionKey),
          rejectUnauthorized: true,
          // Secure naming is checked below (full handshakes; a resumed session inherits
          // the check of the handshake it resumes). Node's own check would also accept
          // the subject CN.
          checkServerIdentity: () => undefined,
        })
        conn.forget(tcp)
        conn.add(secure)
        let done = false
        const timer = setTimeout(() => {
          if (done || conn.closed) return
          done = true
          this.#fail(conn, 'HANDSHAKE_TIMEOUT', { upstream: target, afterMs: this.#spec.timeouts.handshakeMs })
          resetLeg(appLeg)
          conn.destroy()
        }, this.#spec.timeouts.handshakeMs)
        secure.once('close', () => clearTimeout(timer))
        // Only sessions of a connection that passed the name check enter the cache (keyed
        // by that name): resuming one later is what makes skipping the check sound.
        let named = false
        let pendingSession: Buffer | undefined
        secure.on('session', (session: Buffer) => {
          if (named) creds.sessions.set(sessionKey, session)
          else pendingSession = session
        })
        secure.once('error', (err) => {
          if (done) return
          done = true
          clearTimeout(timer)
          creds.sessions.delete(sessionKey)
          const code = errCode(err)
          const reason: FailureReason = code !== undefined && X509_VERIFY_CODE.test(code) ? 'UNTRUSTED_PEER' : 'TLS_HANDSHAKE'
          this.#fail(conn, reason, { upstream: target, code })
          resetLeg(appLeg)
        })
        secure.once('secureConnect', () => {
          if (done) return
          done = true
          clearTimeout(timer)
          const cert = secure.getPeerX509Certificate()
          // A resumed session presents no certificate; it resumes a handshake that passed
          // this check for the same name with the same credentials generation.
          const resumed = secure.isSessionReused()
          const nameOk = target.verifyName === undefined || (cert !== undefined && certificateHasName(cert, target.verifyName))
          if (!resumed && (cert === undefined || !nameOk)) {
            creds.sessions.delete(sessionKey)
            this.#fail(conn, 'SAN_MISMATCH', {
              upstream: target,
              peer: { address, names: cert === undefined ? '' : certificateNames(cert) },
              expected: target.verifyName,
            })
            resetLeg(appLeg)
            conn.destroy()
            return
          }
          named = true
          this.#authenticated(conn)
          if (pendingSession !== undefined) creds.sessions.set(sessionKey, pendingSession)
          this.#handshakes[conn.listener] = (this.#handshakes[conn.listener] ?? 0) + 1
          if (this.#log.isLevelEnabled('debug')) {
            this.#log.debug(
              {
                listener: conn.listener,
                conn: conn.id,
                upstream: target,
                peer: { address, names: cert === undefined ? undefined : certificateNames(cert) },
                protocol: secure.getProtocol(),
                resumed: secure.isSessionReused(),
                generation: creds.generation,
              },
              'upstream handshake completed',
            )
          }
          conn.bytes = () => ({ in: app.bytesRead, out: app.bytesWritten })
          this.#splice(conn, appLeg, { stream: secure, tcp })
        })
      },
      appLeg,
    )
  }

  // ---- shared -------------------------------------------------------------------

  /** Opens a (marked) TCP connection; calls `connected` once, or fails the connection. */
  #connect(conn: Connection, to: { host: string; port: number }, connected: (socket: net.Socket) => void, resetOnFail?: Leg): void {
    const fail = (fields: Record<string, unknown>): void => {
      if (conn.closed) return
      this.#fail(conn, 'UPSTREAM_CONNECT', { upstream: to, ...fields })
      if (resetOnFail !== undefined) resetLeg(resetOnFail)
      conn.destroy()
    }
    const family: IpFamily = net.isIPv6(to.host) ? 6 : 4
    let socket: net.Socket
    try {
      socket = this.#socketMark === null ? new net.Socket({ allowHalfOpen: true }) : createMarkedSocket(family, this.#socketMark)
    } catch (err) {
      fail({ code: isDataPlaneError(err) ? err.code : errCode(err), err })
      return
    }
    conn.add(socket)
    socket.setNoDelay(true)
    let connected_ = false
    const timer = setTimeout(() => {
      if (connected_) return
      fail({ code: 'ETIMEDOUT', afterMs: this.#spec.timeouts.connectMs })
    }, this.#spec.timeouts.connectMs)
    socket.once('error', (err) => {
      clearTimeout(timer)
      if (!connected_) fail({ code: errCode(err) })
    })
    socket.once('close', () => clearTimeout(timer))
    socket.connect({ host: to.host, port: to.port }, () => {
      connected_ = true
      clearTimeout(timer)
      if (conn.closed) return
      connected(socket)
    })
  }

  #splice(conn: Connection, down: Leg, up: Leg): void {
    conn.spliced = true
    splice(down, up, (from, err) => {
      this.#failures.RESET = (this.#failures.RESET ?? 0) + 1
      this.#log.debug({ listener: conn.listener, conn: conn.id, from: from === 'a' ? 'downstream' : 'upstream', code: errCode(err) }, 'reset propagated')
    })
  }
}
