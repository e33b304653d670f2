// Byte forwarding between the two legs of a proxied connection.
//
// - Data: each chunk is written to the other leg as it arrives, never copied or
//   inspected; a leg whose writes back up pauses the reader until 'drain'.
// - Batching: a TLS leg hands over decrypted data one record (<= 16 KiB) per
//   'data' event, several in a row from one socket read, each in its own tick. A
//   large chunk corks the destination until the I/O phase is over (setImmediate),
//   so the burst leaves in one writev instead of a syscall per record; small chunks
//   (request/response) go out at once, uncorked.
// - Half-close: an end (FIN, or TLS close_notify) on one side becomes an end on the
//   other while the opposite direction keeps flowing (both legs are allowHalfOpen).
// - Reset: an error on one leg (ECONNRESET, a TLS alert, a timeout) or a close
//   before both directions finished resets the other leg's TCP socket (RST), so a
//   truncated stream never looks like a clean end to the peer.

import type net from 'node:net'

export interface Leg {
  /** What carries the payload: the TCP socket itself, or a TLSSocket over it. */
  readonly stream: net.Socket
  /** The TCP socket underneath; for a plaintext leg the same object as `stream`. */
  readonly tcp: net.Socket
}

/** RST if the socket is still open; a plain destroy if it cannot be reset. */
export function resetTcp(tcp: net.Socket): void {
  if (tcp.destroyed) return
  try {
    tcp.resetAndDestroy()
  } catch {
    // The handle is already closing (or is not a TCP handle): a plain destroy is all that is left.
    tcp.destroy()
  }
}

/** Sends RST on the leg's TCP socket (if it is still open) and destroys both layers. */
export function resetLeg(leg: Leg): void {
  if (leg.stream === leg.tcp) {
    resetTcp(leg.tcp)
    return
  }
  // Closing the TCP handle under a live TLSSocket from inside an OpenSSL callback
  // (an 'error' or 'secureConnect' handler) crashes Node; one turn later it is safe.
  setImmediate(() => {
    resetTcp(leg.tcp)
    leg.stream.destroy()
  })
}

function finishedCleanly(s: net.Socket): boolean {
  return s.readableEnded && s.writableFinished
}

/** Chunks at least this large are likely part of a burst: batch them (see above). */
const BATCH_MIN_BYTES = 8 * 1024

/** One direction: `from`'s bytes to `to`, with backpressure, batching and end propagation. */
function forward(from: net.Socket, to: net.Socket): void {
  let corked = false
  const flush = (): void => {
    corked = false
    to.uncork()
    if (to.writableNeedDrain) from.pause()
  }
  from.on('data', (chunk: Buffer) => {
    if (corked) {
      to.write(chunk)
      return
    }
    if (chunk.length >= BATCH_MIN_BYTES && !to.writableEnded) {
      corked = true
      to.cork()
      to.write(chunk)
      setImmediate(flush)
      return
    }
    if (!to.write(chunk)) from.pause()
  })
  to.on('drain', () => from.resume())
  from.once('end', () => to.end())
  from.resume()
}

/**
 * Forwards between `a` and `b` until both directions have ended or one side fails.
 * `onReset` runs once if a reset had to be propagated.
 */
export function splice(a: Leg, b: Leg, onReset: (from: 'a' | 'b', err: Error | undefined) => void): void {
  let reset = false
  const propagate = (from: 'a' | 'b', to: Leg, err: Error | undefined): void => {
    if (reset) return
    reset = true
    resetLeg(to)
    onReset(from, err)
  }
  a.stream.on('error', (err) => propagate('a', b, err))
  b.stream.on('error', (err) => propagate('b', a, err))
  a.stream.on('close', () => {
    if (!b.stream.destroyed && !finishedCleanly(a.stream)) propagate('a', b, undefined)
  })
  b.stream.on('close', () => {
    if (!a.stream.destroyed && !finishedCleanly(b.stream)) propagate('b', a, undefined)
  })
  forward(a.stream, b.stream)
  forward(b.stream, a.stream)
}
