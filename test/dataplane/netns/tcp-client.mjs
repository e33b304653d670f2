// One plaintext exchange, for network-namespace tests; prints one JSON line.
//   node tcp-client.mjs <host> <port> <payload | ->
// Sends the payload, half-closes, and reports what came back until the server closed.
// With `-` it sends nothing and keeps its side open: a peer that never speaks.

import net from 'node:net'

const [host, port, payload] = process.argv.slice(2)
const chunks = []
let error
const report = (extra) => {
  process.stdout.write(`${JSON.stringify({ received: Buffer.concat(chunks).toString(), error, ...extra })}\n`)
  process.exit(0)
}
const s = net.connect({ host, port: Number(port), allowHalfOpen: true })
const started = Date.now()
s.on('connect', () => {
  if (payload !== '-') s.end(payload)
})
s.on('data', (c) => chunks.push(c))
s.on('error', (e) => (error = e.code ?? e.message))
s.on('close', () => report(payload === '-' ? { afterMs: Date.now() - started } : {}))
// A silent client never ends its own side, so the server's end is the end.
s.on('end', () => {
  if (payload === '-') report({ afterMs: Date.now() - started })
})
setTimeout(() => report({ timeout: true }), 8000)
