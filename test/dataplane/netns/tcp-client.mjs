// One plaintext exchange, for network-namespace tests; prints one JSON line.
//   node tcp-client.mjs <host> <port> <payload>
// Sends the payload, half-closes, and reports what came back until the server closed.

import net from 'node:net'

const [host, port, payload] = process.argv.slice(2)
const chunks = []
let error
const report = (extra) => {
  process.stdout.write(`${JSON.stringify({ received: Buffer.concat(chunks).toString(), error, ...extra })}\n`)
  process.exit(0)
}
const s = net.connect({ host, port: Number(port), allowHalfOpen: true })
s.on('connect', () => s.end(payload))
s.on('data', (c) => chunks.push(c))
s.on('error', (e) => (error = e.code ?? e.message))
s.on('close', () => report({}))
setTimeout(() => report({ timeout: true }), 8000)
