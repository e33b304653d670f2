// Transparent egress capture: the workload's outbound TCP, redirected here by the
// ruleset, goes out as mTLS to where it was going. The original destination is the
// target, and secure naming requires the peer's certificate to carry that IP address:
// a mesh member may answer only for an address that is its own.

import type net from 'node:net'
import type { Connection, ProxyContext } from './connection.js'
import { originate } from './egress.js'
import { unmapAddress } from './peer-name.js'

export function serveCapture(ctx: ProxyContext, conn: Connection, app: net.Socket): void {
  const destination = app.localAddress
  const port = app.localPort
  if (destination === undefined || port === undefined) {
    conn.destroy()
    return
  }
  const host = unmapAddress(destination)
  void originate(ctx, conn, app, { host, port, verifyName: host })
}
