// Loopback plumbing for data-plane tests: a logger whose records tests can read,
// specs, TLS upstreams with mesh leaves, and small socket helpers.

import type { X509Certificate } from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'
import { pino, type Logger } from 'pino'
import { it } from 'vitest'
import type { Port } from '../../src/config/types.js'
import type { DataPlaneSpec, EgressListenerSpec, ListenerSpec, TimeoutsSpec } from '../../src/dataplane/spec.js'
import type { TestLeaf, TestPki } from '../fixtures/pki.js'
import { logSink } from '../support.js'

export const isRoot = process.getuid?.() === 0

/**
 * `it` for tests that need root (CAP_NET_ADMIN for IP_TRANSPARENT / SO_MARK): runs as
 * root; under CI=true without root it runs and fails; elsewhere it is skipped with the
 * reason in its title.
 */
export function itAsRoot(name: string, fn: () => Promise<void> | void): void {
  if (isRoot) it(name, fn)
  else if (process.env.CI === 'true') {
    it(name, () => {
      throw new Error('this test needs root (CAP_NET_ADMIN), which CI=true requires')
    })
  } else it.skip(`${name} (skipped: needs root for CAP_NET_ADMIN)`, fn)
}

/** Socket-option knobs for the data plane: real marks and transparency when we can. */
export const privileges = { socketMark: isRoot ? undefined : null, transparent: isRoot } as const

export const FAST_TIMEOUTS: TimeoutsSpec = { handshakeMs: 2000, connectMs: 2000, certificateWaitMs: 2000, drainMs: 500 }

export function testLogger(): { log: Logger; records: Record<string, unknown>[] } {
  const sink = logSink()
  return { log: pino({ level: 'debug' }, sink), records: sink.records }
}

export function egressListener(name: string, address: string, upstream: { host: string; port: number }, verifyName: string | undefined): EgressListenerSpec {
  return {
    kind: 'egress',
    name,
    address,
    port: 0 as Port,
    upstream: { host: upstream.host, port: upstream.port as Port },
    verifyName,
  }
}

export function spec(listeners: ListenerSpec[], timeouts: Partial<TimeoutsSpec> = {}): DataPlaneSpec {
  return { listeners, timeouts: { ...FAST_TIMEOUTS, ...timeouts } }
}

export interface Upstream {
  readonly server: tls.Server
  readonly port: number
  /** Server-side TLS sockets, in accept order. */
  readonly accepted: tls.TLSSocket[]
  /** Per accepted socket, read at accept time (a closed socket no longer knows): */
  readonly peerCerts: (X509Certificate | undefined)[]
  readonly resumed: boolean[]
  readonly servernames: (string | false | null)[]
  readonly protocols: (string | null)[]
  close(): Promise<void>
}

/**
 * A mesh peer: TLS server presenting `leaf`, requiring a client certificate from
 * `pki`'s mesh CA. `onConnection` defaults to echo (with half-close: the reply ends
 * when the request ends).
 */
export async function startUpstream(
  pki: TestPki,
  leaf: TestLeaf,
  onConnection: (s: tls.TLSSocket) => void = (s) => s.pipe(s),
  host = '127.0.0.1',
  tlsOptions: tls.TlsOptions = {},
): Promise<Upstream> {
  const accepted: tls.TLSSocket[] = []
  const peerCerts: (X509Certificate | undefined)[] = []
  const resumed: boolean[] = []
  const servernames: (string | false | null)[] = []
  const protocols: (string | null)[] = []
  const server = tls.createServer({
    cert: leaf.chainPem,
    key: leaf.keyPem,
    ca: pki.meshCa.certPem,
    requestCert: true,
    rejectUnauthorized: true,
    allowHalfOpen: true,
    minVersion: 'TLSv1.2',
    ...tlsOptions,
  })
  server.on('secureConnection', (s) => {
    accepted.push(s)
    peerCerts.push(s.getPeerX509Certificate())
    resumed.push(s.isSessionReused())
    servernames.push(s.servername)
    protocols.push(s.getProtocol())
    s.on('error', () => {})
    onConnection(s)
  })
  server.on('tlsClientError', () => {})
  // allowHalfOpen: a peer that sends FIN mid-handshake leaves the server socket
  // half-open for good, so close() destroys every raw connection, not only accepted ones.
  const raw = new Set<net.Socket>()
  server.on('connection', (s: net.Socket) => {
    raw.add(s)
    s.once('close', () => raw.delete(s))
  })
  await new Promise<void>((r) => server.listen({ host, port: 0, ipv6Only: false }, r))
  return {
    server,
    port: (server.address() as net.AddressInfo).port,
    accepted,
    peerCerts,
    resumed,
    servernames,
    protocols,
    close: () =>
      new Promise<void>((r) => {
        for (const s of accepted) s.destroy()
        for (const s of raw) s.destroy()
        server.close(() => r())
      }),
  }
}

export interface Client {
  readonly socket: net.Socket
  /** Everything received so far. */
  received(): Buffer
  /** Resolves at 'end' (true) or at 'close' without end (false). */
  readonly ended: Promise<boolean>
  readonly closed: Promise<{ hadError: boolean; code: string | undefined }>
}

/** A plaintext app client (allowHalfOpen, so it can keep reading after its own end). */
export function connectClient(address: string, port: number): Client {
  const socket = net.connect({ host: address, port, allowHalfOpen: true })
  const chunks: Buffer[] = []
  let code: string | undefined
  socket.on('data', (b: Buffer) => chunks.push(b))
  socket.on('error', (err: NodeJS.ErrnoException) => {
    code = err.code
  })
  const ended = new Promise<boolean>((resolve) => {
    socket.once('end', () => resolve(true))
    socket.once('close', () => resolve(false))
  })
  const closed = new Promise<{ hadError: boolean; code: string | undefined }>((resolve) => {
    socket.once('close', (hadError) => resolve({ hadError, code }))
  })
  return { socket, received: () => Buffer.concat(chunks), ended, closed }
}

export function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) resolve()
      else if (Date.now() > deadline) reject(new Error(`condition not met within ${timeoutMs} ms`))
      else setTimeout(tick, 10)
    }
    tick()
  })
}

export function once<T = unknown>(emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (v: T) => resolve(v)))
}
