// The benchmark's application in the server pod: an echo server (request/response and
// new-connection workloads) and a source that streams bytes until the client goes
// away (bulk). Run as `node backend.js '{"echo":[9000],"source":[9001]}'`; prints one
// JSON line per listening port.

import net from 'node:net'

interface BackendOptions {
  readonly echo: readonly number[]
  readonly source: readonly number[]
}

/** A source connection never outlives this, whatever the client does. */
const SOURCE_MAX_MS = 120_000
const CHUNK = Buffer.alloc(64 * 1024, 0x5a)

function echo(socket: net.Socket): void {
  socket.setNoDelay(true)
  socket.on('error', () => socket.destroy())
  socket.pipe(socket)
}

function source(socket: net.Socket): void {
  socket.setNoDelay(true)
  const deadline = Date.now() + SOURCE_MAX_MS
  let stopped = false
  const stop = (): void => {
    stopped = true
    socket.destroy()
  }
  socket.on('error', stop)
  socket.on('close', () => (stopped = true))
  // The client sends nothing; its FIN means it is done.
  socket.on('end', stop)
  socket.resume()
  const pump = (): void => {
    while (!stopped) {
      if (Date.now() > deadline) return stop()
      if (!socket.write(CHUNK)) {
        socket.once('drain', pump)
        return
      }
    }
  }
  pump()
}

function listen(port: number, handler: (s: net.Socket) => void): void {
  const server = net.createServer({ noDelay: true }, handler)
  server.on('error', (err) => {
    process.stderr.write(`backend port ${port}: ${err.message}\n`)
    process.exit(1)
  })
  server.listen({ port, host: '::', ipv6Only: false, backlog: 4096 }, () => {
    process.stdout.write(`${JSON.stringify({ listening: port })}\n`)
  })
}

const opts = JSON.parse(process.argv[2] ?? '{}') as BackendOptions
for (const p of opts.echo) listen(p, echo)
for (const p of opts.source) listen(p, source)
