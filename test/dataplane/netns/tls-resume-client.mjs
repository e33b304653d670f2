// Session resumption across listeners, for network-namespace tests; prints one JSON line.
//   node tls-resume-client.mjs <host> <first port> <second port> <ca.pem> <client tls dir | ->
// Connects to the first port without a client certificate, keeps the session ticket it
// is given, then offers that session on the second port (presenting the certificate
// of the directory, if one is named) and reports whether the server resumed it.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import tls from 'node:tls'

const [host, firstPort, secondPort, caFile, certDir] = process.argv.slice(2)
const ca = readFileSync(caFile)

function exchange(port, extra, payload) {
  return new Promise((resolve) => {
    const chunks = []
    let session
    let resumed
    let secure = false
    let error
    const s = tls.connect({ host, port: Number(port), ca, allowHalfOpen: true, ...extra })
    s.on('session', (b) => (session = b))
    s.on('secureConnect', () => {
      secure = true
      resumed = s.isSessionReused()
      s.end(payload)
    })
    s.on('data', (c) => chunks.push(c))
    s.on('error', (e) => (error = e.code ?? e.message))
    s.on('close', () => resolve({ secure, resumed, received: Buffer.concat(chunks).toString(), error, session }))
  })
}

setTimeout(() => {
  process.stdout.write(`${JSON.stringify({ timeout: true })}\n`)
  process.exit(0)
}, 8000)
const first = await exchange(firstPort, {}, 'first')
const second = await exchange(
  secondPort,
  {
    session: first.session,
    ...(certDir !== '-' ? { cert: readFileSync(join(certDir, 'certChain.pem')), key: readFileSync(join(certDir, 'key.pem')) } : {}),
  },
  'second',
)
const strip = ({ session, ...rest }) => ({ ...rest, gotSession: session !== undefined })
process.stdout.write(`${JSON.stringify({ first: strip(first), second: strip(second) })}\n`)
process.exit(0)
