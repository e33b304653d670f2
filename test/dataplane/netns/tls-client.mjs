// One mTLS (or TLS) exchange, for network-namespace tests; prints one JSON line.
//   node tls-client.mjs <host> <port> <ca.pem> <client tls dir | -> <payload>
// Sends the payload, half-closes, and reports what came back until the server closed.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import tls from 'node:tls'

const [host, port, caFile, certDir, payload] = process.argv.slice(2)
const opts = { host, port: Number(port), ca: readFileSync(caFile), allowHalfOpen: true }
if (certDir !== '-') {
  opts.cert = readFileSync(join(certDir, 'certChain.pem'))
  opts.key = readFileSync(join(certDir, 'key.pem'))
}
const chunks = []
let error
let secure = false
const report = (extra) => {
  process.stdout.write(`${JSON.stringify({ secure, received: Buffer.concat(chunks).toString(), error, ...extra })}\n`)
  process.exit(0)
}
const s = tls.connect(opts)
s.on('secureConnect', () => {
  secure = true
  s.end(payload)
})
s.on('data', (c) => chunks.push(c))
s.on('error', (e) => (error = e.code ?? e.message))
s.on('close', () => report({}))
setTimeout(() => report({ timeout: true }), 8000)
