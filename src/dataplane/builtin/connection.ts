// One proxied connection: the sockets it owns, whether forwarding has begun, and
// the moment it is over (every owned socket closed). Before forwarding begins, any
// owned socket closing (always the case after an error) aborts the whole
// connection; after that, forward.ts owns the error handling.
//
// Also what each listener kind's handler (ingress.ts, egress.ts, capture.ts,
// upstream.ts) gets from the data plane that accepted the connection: ProxyContext.

import type net from 'node:net'
import tls from 'node:tls'
import type { Logger } from 'pino'
import type { TimeoutsSpec } from '../spec.js'
import type { Credentials } from './credentials.js'
import { resetTcp, type Leg } from './forward.js'
import type { UpstreamResolver } from './upstream-resolver.js'

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

/** What a listener kind's handler needs from the data plane; one per data plane. */
export interface ProxyContext {
  readonly log: Logger
  readonly timeouts: TimeoutsSpec
  /** SO_MARK for every socket opened upstream; null: unmarked (tests without CAP_NET_ADMIN). */
  readonly socketMark: number | null
  readonly resolver: UpstreamResolver
  /** The current credential generation; undefined only before the first. */
  credentials(): Credentials | undefined
  /** Counts the failure and logs it (rate-limited per reason). The caller ends the connection. */
  fail(conn: Connection, reason: FailureReason, fields?: Record<string, unknown>): void
  /** The peer proved who it is: the connection leaves the pending bounds and counts as a handshake. */
  handshakeCompleted(conn: Connection): void
  /** Forwards between the two legs for the rest of the connection. */
  splice(conn: Connection, down: Leg, up: Leg): void
}

/** err.code of a Node or OpenSSL error, if it has one. */
export function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

export class Connection {
  readonly id: number
  readonly listener: string
  /** Set once both legs are spliced; until then the connection is in setup. */
  spliced = false
  /** Payload counters, read once when the connection ends (see DataPlaneStats.bytesIn). */
  bytes: (() => { readonly in: number; readonly out: number }) | undefined
  readonly #sockets = new Set<net.Socket>()
  readonly #onDone: (conn: Connection) => void
  #done = false

  constructor(id: number, listener: string, onDone: (conn: Connection) => void) {
    this.id = id
    this.listener = listener
    this.#onDone = onDone
  }

  /** True once every owned socket has closed, or the connection was destroyed. */
  get closed(): boolean {
    return this.#done
  }

  add(socket: net.Socket): void {
    if (this.#done) {
      socket.destroy()
      return
    }
    this.#sockets.add(socket)
    // Errors are classified and counted by whoever drives the current phase; an
    // error is always followed by 'close', which is where the connection reacts.
    socket.on('error', () => {})
    socket.once('close', () => {
      if (!this.#sockets.delete(socket)) return
      if (!this.spliced) this.destroy()
      else if (this.#sockets.size === 0) this.#finish()
    })
  }

  /**
   * Stops tracking a socket that another layer now owns (a TCP socket wrapped in a
   * TLSSocket: the TLS socket is tracked instead and closes the TCP handle itself).
   */
  forget(socket: net.Socket): void {
    this.#sockets.delete(socket)
  }

  /**
   * Ends the connection abruptly: plain TCP sockets are reset (RST), so a refused or
   * cut-off connection never looks like a clean, empty end to the peer; TLS sockets
   * are destroyed (no close_notify, which a TLS peer reads as truncation).
   */
  destroy(): void {
    if (this.#done) return
    for (const s of this.#sockets) {
      if (s instanceof tls.TLSSocket) s.destroy()
      else resetTcp(s)
    }
    this.#sockets.clear()
    this.#finish()
  }

  #finish(): void {
    if (this.#done) return
    this.#done = true
    this.#onDone(this)
  }
}
