// Idle TCP connections, for network-namespace flood tests; prints one JSON line.
//   node idle-clients.mjs <host> <port> <count> <holdMs> [source address ...]
// Opens `count` connections one after another (source addresses round-robin), sends
// nothing, waits `holdMs` after the last one, and reports for each connection, in
// opening order, whether it is still open or how it ended.

import net from 'node:net'

const [host, port, count, holdMs, ...sources] = process.argv.slice(2)
const results = []
const sockets = []
setTimeout(() => {
  process.stdout.write(`${JSON.stringify({ timeout: true })}\n`)
  process.exit(0)
}, 20_000)
for (let i = 0; i < Number(count); i++) {
  const source = sources.length > 0 ? sources[i % sources.length] : undefined
  const r = { source, open: false, ended: false, error: undefined }
  results.push(r)
  await new Promise((resolve) => {
    const s = net.connect({ host, port: Number(port), allowHalfOpen: true, ...(source !== undefined ? { localAddress: source } : {}) })
    sockets.push(s)
    s.on('connect', () => {
      r.open = true
      resolve()
    })
    s.on('end', () => (r.ended = true))
    s.on('error', (e) => {
      r.error = e.code ?? e.message
      resolve()
    })
    s.on('close', () => (r.open = false))
  })
}
await new Promise((r) => setTimeout(r, Number(holdMs)))
process.stdout.write(`${JSON.stringify({ connections: results })}\n`)
for (const s of sockets) s.destroy()
process.exit(0)
