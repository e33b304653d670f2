// Egress: plaintext in from the workload, mTLS out to a mesh peer, with secure naming
// (the peer's certificate must carry the name the workload asked for). Serves the
// explicit egress listeners (upstream from the spec) and the transparent capture
// (capture.ts: upstream is the original destination).

import type net from 'node:net'
import tls from 'node:tls'
import { settleOnce } from '../../timers.js'
import type { EgressListenerSpec } from '../spec.js'
import { errCode, type Connection, type FailureReason, type ProxyContext } from './connection.js'
import { resetLeg, type Leg } from './forward.js'
import { certificateHasName, certificateNames, isIpLiteral } from './peer-name.js'
import { connectUpstream } from './upstream.js'

export interface Target {
  readonly host: string
  readonly port: number
  /** The name the peer's certificate must carry; undefined: mesh CA only (an explicit per-entry opt-out of secure naming). */
  readonly verifyName: string | undefined
}

// OpenSSL X509 verification results as Node reports them (err.code).
const X509_VERIFY_CODE = /^(UNABLE_TO_|CERT_|SELF_SIGNED|DEPTH_ZERO|INVALID_|PATH_LENGTH|KEYUSAGE|ERR_TLS_CERT_ALTNAME)/

export function serveEgress(ctx: ProxyContext, l: EgressListenerSpec, conn: Connection, app: net.Socket): void {
  void originate(ctx, conn, app, { host: l.upstream.host, port: l.upstream.port, verifyName: l.verifyName })
}

/** Resolves the target if it is a name, connects, and runs the client handshake; then splices. */
export async function originate(ctx: ProxyContext, conn: Connection, app: net.Socket, target: Target): Promise<void> {
  const creds = ctx.credentials()
  if (creds === undefined) {
    conn.destroy()
    return
  }
  const appLeg: Leg = { stream: app, tcp: app }
  let address = target.host
  if (!isIpLiteral(address)) {
    try {
      address = await ctx.resolver.resolve(address)
    } catch (err) {
      if (conn.closed) return
      ctx.fail(conn, 'UPSTREAM_CONNECT', { upstream: target, code: errCode(err) })
      resetLeg(appLeg)
      conn.destroy()
      return
    }
    if (conn.closed) return
  }
  const sessionKey = `${target.host}|${target.port}|${target.verifyName}`
  connectUpstream(
    ctx,
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
      const settle = settleOnce(ctx.timeouts.handshakeMs, () => {
        if (conn.closed) return
        ctx.fail(conn, 'HANDSHAKE_TIMEOUT', { upstream: target, afterMs: ctx.timeouts.handshakeMs })
        resetLeg(appLeg)
        conn.destroy()
      })
      secure.once('close', settle)
      // Only sessions of a connection that passed the name check enter the cache (keyed
      // by that name): resuming one later is what makes skipping the check sound.
      let named = false
      let pendingSession: Buffer | undefined
      secure.on('session', (session: Buffer) => {
        if (named) creds.sessions.set(sessionKey, session)
        else pendingSession = session
      })
      secure.once('error', (err) => {
        if (!settle()) return
        creds.sessions.delete(sessionKey)
        const code = errCode(err)
        const reason: FailureReason = code !== undefined && X509_VERIFY_CODE.test(code) ? 'UNTRUSTED_PEER' : 'TLS_HANDSHAKE'
        ctx.fail(conn, reason, { upstream: target, code })
        resetLeg(appLeg)
      })
      secure.once('secureConnect', () => {
        if (!settle()) return
        const cert = secure.getPeerX509Certificate()
        // A resumed session presents no certificate; it resumes a handshake that passed
        // this check for the same name with the same credentials generation.
        const resumed = secure.isSessionReused()
        const nameOk = target.verifyName === undefined || (cert !== undefined && certificateHasName(cert, target.verifyName))
        if (!resumed && (cert === undefined || !nameOk)) {
          creds.sessions.delete(sessionKey)
          ctx.fail(conn, 'SAN_MISMATCH', {
            upstream: target,
            peer: { address, names: cert === undefined ? '' : certificateNames(cert) },
            expected: target.verifyName,
          })
          resetLeg(appLeg)
          conn.destroy()
          return
        }
        named = true
        ctx.handshakeCompleted(conn)
        if (pendingSession !== undefined) creds.sessions.set(sessionKey, pendingSession)
        if (ctx.log.isLevelEnabled('debug')) {
          ctx.log.debug(
            {
              listener: conn.listener,
              conn: conn.id,
              upstream: target,
              peer: { address, names: cert === undefined ? undefined : certificateNames(cert) },
              protocol: secure.getProtocol(),
              resumed,
              generation: creds.generation,
            },
            'upstream handshake completed',
          )
        }
        conn.bytes = () => ({ in: app.bytesRead, out: app.bytesWritten })
        ctx.splice(conn, appLeg, { stream: secure, tcp })
      })
    },
    appLeg,
  )
}
