// Echo server on 8080 (IPv4 and IPv6): every chunk it receives goes to stdout (the
// console), JSON-escaped, so the test can prove which bytes ever reached the workload.
import net from 'node:net'

const server = net.createServer((socket) => {
  const peer = `${socket.remoteAddress}:${socket.remotePort}`
  socket.on('data', (chunk) => {
    process.stdout.write(`PODVM-VM workload received peer=${peer} bytes=${chunk.length} data=${JSON.stringify(chunk.toString('latin1'))}\n`)
    socket.write(chunk)
  })
  socket.on('error', () => {})
})
server.listen({ port: 8080, host: '::', ipv6Only: false }, () => process.stdout.write('PODVM-VM workload listening on 8080\n'))
