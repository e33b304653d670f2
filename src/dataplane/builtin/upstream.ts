// Upstream connect, for every listener kind: a TCP connection from the data plane to
// where the bytes go next (the app's own port for ingress, a mesh peer for egress).
// Marked with SO_MARK so the ruleset lets the mesh's own traffic through instead of
// capturing it again.

import net from 'node:net'
import { isDataPlaneError } from '../errors.js'
import { settleOnce } from '../../timers.js'
import { errCode, type Connection, type ProxyContext } from './connection.js'
import { resetLeg, type Leg } from './forward.js'
import { createMarkedSocket, type IpFamily } from './socket-options.js'

/**
 * Opens the connection within timeouts.connectMs and calls `connected` once with the
 * socket; or counts UPSTREAM_CONNECT, resets `resetOnFail` (the client's leg, so the
 * client sees a refusal, not a clean end) and ends the connection.
 */
export function connectUpstream(
  ctx: ProxyContext,
  conn: Connection,
  to: { readonly host: string; readonly port: number },
  connected: (socket: net.Socket) => void,
  resetOnFail?: Leg,
): void {
  const fail = (fields: Record<string, unknown>): void => {
    if (conn.closed) return
    ctx.fail(conn, 'UPSTREAM_CONNECT', { upstream: to, ...fields })
    if (resetOnFail !== undefined) resetLeg(resetOnFail)
    conn.destroy()
  }
  const family: IpFamily = net.isIPv6(to.host) ? 6 : 4
  let socket: net.Socket
  try {
    socket = ctx.socketMark === null ? new net.Socket({ allowHalfOpen: true }) : createMarkedSocket(family, ctx.socketMark)
  } catch (err) {
    fail({ code: isDataPlaneError(err) ? err.code : errCode(err), err })
    return
  }
  conn.add(socket)
  socket.setNoDelay(true)
  const settle = settleOnce(ctx.timeouts.connectMs, () => fail({ code: 'ETIMEDOUT', afterMs: ctx.timeouts.connectMs }))
  socket.once('error', (err) => {
    if (settle()) fail({ code: errCode(err) })
  })
  socket.once('close', settle)
  socket.connect({ host: to.host, port: to.port }, () => {
    if (!settle() || conn.closed) return
    connected(socket)
  })
}
