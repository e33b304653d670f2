// The demo's and the end-to-end tests' application: a plain TCP (or, for the secure-naming
// case, TLS) echo server that reports every accepted connection and what it carried as
// JSON lines on stdout. Run inside a namespace: `node dist/demo/echo-server.js <json>`.

import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer as createTcpServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'

export interface EchoServerOptions {
  /** Ports to listen on, on all addresses, IPv4 and IPv6. */
  readonly ports: readonly number[]
  /** Serve TLS with these PEM files instead of plaintext. */
  readonly tls?: { readonly cert: string; readonly key: string }
}

export type EchoEvent =
  | { event: 'listening'; port: number }
  | { event: 'accept'; port: number; remote: string }
  /** The first bytes of a connection, so tests can look for their marker. */
  | { event: 'data'; port: number; remote: string; head: string }
  | { event: 'closed'; port: number; remote: string; bytes: number; sha256: string; error?: string }

function emit(e: EchoEvent): void {
  process.stdout.write(`${JSON.stringify(e)}\n`)
}

function handle(socket: Socket, port: number): void {
  socket.setNoDelay(true)
  const remote = `${socket.remoteAddress}:${socket.remotePort}`
  emit({ event: 'accept', port, remote })
  const hash = createHash('sha256')
  let bytes = 0
  let error: string | undefined
  socket.on('data', (chunk: Buffer) => {
    if (bytes === 0) emit({ event: 'data', port, remote, head: chunk.subarray(0, 256).toString('latin1') })
    bytes += chunk.length
    hash.update(chunk)
    if (!socket.write(chunk)) {
      socket.pause()
      socket.once('drain', () => socket.resume())
    }
  })
  socket.on('end', () => socket.end())
  socket.on('error', (err) => {
    error = (err as NodeJS.ErrnoException).code ?? err.message
  })
  socket.on('close', () => {
    const e: EchoEvent = { event: 'closed', port, remote, bytes, sha256: hash.digest('hex') }
    emit(error === undefined ? e : { ...e, error })
  })
}

export function startEchoServers(opts: EchoServerOptions): Server[] {
  return opts.ports.map((port) => {
    const server: Server =
      opts.tls === undefined
        ? createTcpServer({ allowHalfOpen: true }, (s) => handle(s, port))
        : createTlsServer(
            { cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key), allowHalfOpen: true },
            (s) => handle(s, port),
          )
    server.listen({ port, host: '::', ipv6Only: false }, () => emit({ event: 'listening', port }))
    return server
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as EchoServerOptions
  const servers = startEchoServers(opts)
  const stop = (): void => {
    for (const s of servers) s.close()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
