// Ingress: TLS (mTLS where the listener requires client certificates) in from the
// network, plaintext on to the original destination: an address of this pod (checked
// at accept), so the decrypted stream never leaves the pod.

import type net from 'node:net'
import tls from 'node:tls'
import { settleOnce } from '../../timers.js'
import type { IngressListenerSpec } from '../spec.js'
import { errCode, type Connection, type FailureReason, type ProxyContext } from './connection.js'
import type { Leg } from './forward.js'
import { certificateNames, unmapAddress } from './peer-name.js'
import { connectUpstream } from './upstream.js'

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

export function serveIngress(ctx: ProxyContext, l: IngressListenerSpec, conn: Connection, raw: net.Socket): void {
  const context = ctx.credentials()?.servers.get(l.name)
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
  const settle = settleOnce(ctx.timeouts.handshakeMs, () => {
    if (conn.closed) return
    ctx.fail(conn, 'HANDSHAKE_TIMEOUT', { peer, afterMs: ctx.timeouts.handshakeMs })
    conn.destroy()
  })
  // A shed or reset connection must not keep its timer (and through it the socket) alive.
  secure.once('close', settle)
  // A client that leaves before the handshake is over: a server TLSSocket reports the
  // end but never closes by itself, and would sit out handshakeMs (connect-and-close
  // is the cheapest flood there is).
  secure.once('end', () => {
    if (!settle()) return
    ctx.fail(conn, 'TLS_HANDSHAKE', { peer, code: 'EOF_BEFORE_HANDSHAKE' })
    conn.destroy()
  })
  secure.once('error', (err) => {
    if (!settle()) return
    const code = errCode(err)
    const reason: FailureReason = code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' ? 'NO_CLIENT_CERT' : 'TLS_HANDSHAKE'
    ctx.fail(conn, reason, { peer, code })
  })
  secure.once('secure', () => {
    if (!settle()) return
    if (l.requireClientCert) {
      const verifyError = clientVerifyError(secure)
      const cert = secure.getPeerX509Certificate()
      if (cert === undefined) {
        ctx.fail(conn, 'NO_CLIENT_CERT', { peer })
        conn.destroy()
        return
      }
      if (verifyError !== undefined) {
        ctx.fail(conn, 'UNTRUSTED_PEER', { peer: { ...peer, names: certificateNames(cert), issuer: cert.issuer }, code: errCode(verifyError) })
        conn.destroy()
        return
      }
    }
    ctx.handshakeCompleted(conn)
    if (ctx.log.isLevelEnabled('debug')) {
      const cert = secure.getPeerX509Certificate()
      ctx.log.debug(
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
    connectUpstream(ctx, conn, { host: unmapAddress(destination), port }, (app) => {
      const down: Leg = { stream: secure, tcp: raw }
      const up: Leg = { stream: app, tcp: app }
      conn.bytes = () => ({ in: app.bytesWritten, out: app.bytesRead })
      ctx.splice(conn, down, up)
    })
  })
}
