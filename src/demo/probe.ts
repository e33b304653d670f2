// One client connection, run inside a namespace, reported as one JSON object:
// `node dist/demo/probe.js <json>`. Used by the demo and the end-to-end tests to act as
// a workload (A's app), an outsider (C), or an attacker.

import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'

export interface ProbeOptions {
  readonly host: string
  readonly port: number
  /** Sent first; the probe then expects it echoed. */
  readonly marker?: string
  /** Additionally stream this many pseudo-random bytes and compare the echo's SHA-256. */
  readonly bulkBytes?: number
  /** Keep the connection open this long, sending the marker every second (long-lived stream). */
  readonly holdMs?: number
  readonly timeoutMs?: number
  /** Connect with TLS; client certificate optional. */
  readonly tls?: {
    readonly ca?: string
    readonly cert?: string
    readonly key?: string
    readonly servername?: string
  }
}

export interface ProbeResult {
  connected: boolean
  tls?: { authorized: boolean; peerSubject?: string; peerSerial?: string; protocol?: string | null }
  sent: number
  received: number
  echoed: boolean
  sha256Sent?: string
  sha256Received?: string
  /** Marker echoes received while holding the connection. */
  heartbeats?: number
  error?: string
  ms: number
}

export function probe(opts: ProbeOptions): Promise<ProbeResult> {
  const started = Date.now()
  const timeoutMs = opts.timeoutMs ?? 5_000
  return new Promise((resolve) => {
    const result: ProbeResult = { connected: false, sent: 0, received: 0, echoed: false, ms: 0 }
    const sentHash = createHash('sha256')
    const recvHash = createHash('sha256')
    const expected = Buffer.from(opts.marker ?? '')
    let received = Buffer.alloc(0)
    let settled = false
    let socket: Socket | TLSSocket
    const finish = (error?: string): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (heartbeat !== undefined) clearInterval(heartbeat)
      if (error !== undefined) result.error = error
      if (opts.bulkBytes !== undefined) {
        result.sha256Sent = sentHash.digest('hex')
        result.sha256Received = recvHash.digest('hex')
      }
      result.ms = Date.now() - started
      socket.destroy()
      resolve(result)
    }
    const timer = setTimeout(() => finish('TIMEOUT'), timeoutMs)
    let heartbeat: NodeJS.Timeout | undefined
    const total = expected.length + (opts.bulkBytes ?? 0)

    const onConnected = (): void => {
      result.connected = true
      if (opts.tls !== undefined) {
        const t = socket as TLSSocket
        const peer = t.getPeerCertificate()
        result.tls = {
          authorized: t.authorized,
          peerSubject: peer?.subject?.CN === undefined ? undefined : String(peer.subject.CN),
          peerSerial: peer?.serialNumber,
          protocol: t.getProtocol(),
        }
      }
      const write = (b: Buffer): boolean => {
        result.sent += b.length
        sentHash.update(b)
        return socket.write(b)
      }
      if (expected.length > 0) write(expected)
      if (opts.bulkBytes !== undefined) {
        let left = opts.bulkBytes
        const chunk = randomBytes(64 * 1024)
        const pump = (): void => {
          while (left > 0) {
            const n = Math.min(left, chunk.length)
            left -= n
            if (!write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
              socket.once('drain', pump)
              return
            }
          }
          if (opts.holdMs === undefined) socket.end()
        }
        pump()
      } else if (opts.holdMs === undefined) {
        socket.end()
      }
      if (opts.holdMs !== undefined) {
        result.heartbeats = 0
        heartbeat = setInterval(() => write(expected), 1_000)
        setTimeout(() => {
          clearInterval(heartbeat)
          socket.end()
        }, opts.holdMs)
      }
    }

    socket =
      opts.tls === undefined
        ? tcpConnect({ host: opts.host, port: opts.port, allowHalfOpen: true }, onConnected)
        : tlsConnect(
            {
              host: opts.host,
              port: opts.port,
              ca: opts.tls.ca === undefined ? undefined : readFileSync(opts.tls.ca),
              cert: opts.tls.cert === undefined ? undefined : readFileSync(opts.tls.cert),
              key: opts.tls.key === undefined ? undefined : readFileSync(opts.tls.key),
              servername: opts.tls.servername,
              // The probe reports whether the peer was trusted; it does not decide.
              rejectUnauthorized: false,
              // Passed through to the TLSSocket by tls.connect, though not in its type.
              ...{ allowHalfOpen: true },
            },
            onConnected,
          )
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      result.received += chunk.length
      recvHash.update(chunk)
      if (!result.echoed && expected.length > 0) {
        received = Buffer.concat([received, chunk.subarray(0, expected.length)]).subarray(0, expected.length)
        if (received.equals(expected)) result.echoed = true
      }
      if (result.heartbeats !== undefined && chunk.includes(expected)) result.heartbeats++
    })
    socket.on('end', () => {
      if (opts.bulkBytes !== undefined && result.received < total) finish('SHORT_READ')
      else finish()
    })
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message))
    socket.on('close', () => finish())
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as ProbeOptions
  void probe(opts).then((r) => process.stdout.write(`${JSON.stringify(r)}\n`))
}
