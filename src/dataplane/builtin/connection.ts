// One proxied connection: the sockets it owns, whether forwarding has begun, and
// the moment it is over (every owned socket closed). Before forwarding begins, any
// owned socket closing (always the case after an error) aborts the whole
// connection; after that, forward.ts owns the error handling.

import type net from 'node:net'
import tls from 'node:tls'
import { resetTcp } from './forward.js'

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
