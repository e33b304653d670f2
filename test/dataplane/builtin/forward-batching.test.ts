// forward.ts under bulk: large chunks take the corked (batched) path; nothing may be
// lost, reordered or stuck, and a half-close still crosses while the other direction flows.

import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { splice } from '../../../src/dataplane/builtin/forward.js'

const opened: (net.Server | net.Socket)[] = []
afterEach(() => {
  for (const o of opened.splice(0)) (o instanceof net.Server ? o.close() : o.destroy())
})

/** A connected pair of TCP sockets on loopback: [client end, server end]. */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true })
  opened.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r))
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true })
  await new Promise<void>((r) => client.once('connect', r))
  const s = await accepted
  opened.push(client, s)
  return [client, s]
}

function collect(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = []
  s.on('data', (c: Buffer) => chunks.push(c))
  return new Promise((r) => s.once('end', () => r(Buffer.concat(chunks))))
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

describe('splice under bulk', () => {
  it('carries 8 MiB in 64 KiB writes intact, then the reverse direction after a half-close', async () => {
    const [app, proxyIn] = await pair()
    const [proxyOut, server] = await pair()
    const resets: string[] = []
    splice({ stream: proxyIn, tcp: proxyIn }, { stream: proxyOut, tcp: proxyOut }, (from) => resets.push(from))

    const payload = randomBytes(8 * 1024 * 1024)
    const atServer = collect(server)
    const atApp = collect(app)
    for (let off = 0; off < payload.length; off += 64 * 1024) {
      if (!app.write(payload.subarray(off, off + 64 * 1024))) await new Promise((r) => app.once('drain', r))
    }
    app.end()
    const received = await atServer
    expect(received.length).toBe(payload.length)
    expect(sha(received)).toBe(sha(payload))

    // The app has ended its side; the server's answer must still arrive, then its end.
    const reply = randomBytes(300 * 1024)
    server.end(reply)
    const back = await atApp
    expect(sha(back)).toBe(sha(reply))
    expect(resets).toEqual([])
  }, 30_000)

  it('small chunks are forwarded as they come (request/response), in order', async () => {
    const [app, proxyIn] = await pair()
    const [proxyOut, server] = await pair()
    splice({ stream: proxyIn, tcp: proxyIn }, { stream: proxyOut, tcp: proxyOut }, () => {})
    server.on('data', (c: Buffer) => server.write(c))
    let got = ''
    app.setEncoding('utf8')
    app.on('data', (c: string) => (got += c))
    for (let i = 0; i < 50; i++) {
      const msg = `req-${i};`
      app.write(msg)
      const want = Array.from({ length: i + 1 }, (_, k) => `req-${k};`).join('')
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no echo for ${msg}; got ${got.slice(-40)}`)), 2000)
        const check = (): void => {
          if (got === want) {
            clearTimeout(t)
            app.off('data', check)
            resolve()
          }
        }
        app.on('data', check)
        check()
      })
    }
    expect(got.endsWith('req-49;')).toBe(true)
  })
})
