import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Duplex } from 'node:stream'
import { pino } from 'pino'
import { TtrpcClient } from '../../src/ttrpc/client.js'
import { GrpcCode, statusError } from '../../src/ttrpc/errors.js'
import { encodeFrame, FrameDecoder } from '../../src/ttrpc/frame.js'
import { decodeResponse, encodeRequest } from '../../src/ttrpc/messages.js'
import { TtrpcServer, type CallContext } from '../../src/ttrpc/server.js'
import { logSink, rejected } from '../support.js'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
const dec = (b: Uint8Array): string => new TextDecoder().decode(b)

let dir: string
let sock: string
let sink: ReturnType<typeof logSink>
let log: pino.Logger
let server: TtrpcServer
const clients: TtrpcClient[] = []

async function client(): Promise<TtrpcClient> {
  const c = await TtrpcClient.connect(sock, { log })
  clients.push(c)
  return c
}

/** Sends raw bytes on a fresh connection; resolves with what came back once the server closes it. */
function rawExchange(bytes: Uint8Array, end = false): Promise<{ received: Uint8Array; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection({ path: sock })
    const got: Buffer[] = []
    s.on('data', (d) => got.push(d))
    s.on('error', reject)
    s.on('close', () => resolve({ received: Buffer.concat(got), closedByServer: true }))
    s.on('connect', () => (end ? s.end(bytes) : s.write(bytes)))
  })
}

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ttrpc-test-'))
  sock = path.join(dir, 's.sock')
  sink = logSink()
  log = pino({ level: 'debug' }, sink)
  server = new TtrpcServer({ log })
  server.register('test.Echo', {
    Echo: (p) => p,
    Upper: async (p) => enc(dec(p).toUpperCase()),
    Delay: async (p, ctx) => {
      const ms = Number(dec(p))
      await new Promise((r) => setTimeout(r, ms))
      return enc(`${ctx.streamId}:${ms}`)
    },
    Meta: (_p, ctx) => enc(JSON.stringify(Object.fromEntries(ctx.metadata))),
    Deny: () => {
      throw statusError(GrpcCode.PERMISSION_DENIED, 'denied')
    },
    Crash: () => {
      throw new Error('secret internal detail')
    },
    Hang: (_p, ctx: CallContext) =>
      new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true })),
  })
  await server.listen(sock)
})

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy()
  server.destroy()
  await fs.rm(dir, { recursive: true, force: true })
})

describe('ttrpc client and server over a Unix socket', () => {
  it('answers 100 concurrent calls to the right callers on one connection', async () => {
    const c = await client()
    // Shuffled delays make answers come back out of order.
    const calls = Array.from({ length: 100 }, (_, i) => ({ i, ms: (i * 37) % 23 }))
    const results = await Promise.all(
      calls.map(({ i, ms }) =>
        i % 2 === 0 ? c.call('test.Echo', 'Upper', enc(`call-${i}`)).then(dec) : c.call('test.Echo', 'Delay', enc(String(ms))).then(dec),
      ),
    )
    results.forEach((r, i) => {
      if (i % 2 === 0) expect(r).toBe(`CALL-${i}`)
      else expect(r).toBe(`${2 * i + 1}:${calls[i]!.ms}`) // stream ids 1,3,5… in call order
    })
    expect(server.connections).toBe(1)
    expect(c.pending).toBe(0)
  })

  it('carries metadata, keys lower-cased, one entry per value', async () => {
    const c = await client()
    const got = JSON.parse(dec(await c.call('test.Echo', 'Meta', new Uint8Array(0), { metadata: { 'X-Trace': 'abc', multi: ['1', '2'] } })))
    expect(got).toEqual({ 'x-trace': ['abc'], multi: ['1', '2'] })
  })

  it('echoes an empty payload', async () => {
    const c = await client()
    expect(await c.call('test.Echo', 'Echo', new Uint8Array(0))).toEqual(new Uint8Array(0))
  })

  it('answers an unknown service and an unknown method with UNIMPLEMENTED', async () => {
    const c = await client()
    expect(await rejected(c.call('no.Such', 'X', new Uint8Array(0)))).toMatchObject({
      code: 'TTRPC_STATUS',
      details: { grpcCode: GrpcCode.UNIMPLEMENTED, grpcMessage: 'service no.Such', service: 'no.Such', method: 'X' },
    })
    expect(await rejected(c.call('test.Echo', 'Nope', new Uint8Array(0)))).toMatchObject({
      code: 'TTRPC_STATUS',
      details: { grpcCode: GrpcCode.UNIMPLEMENTED, grpcMessage: 'method Nope' },
    })
    // The connection is still good.
    expect(dec(await c.call('test.Echo', 'Echo', enc('ok')))).toBe('ok')
  })

  it('maps a handler status error to its code, and any other error to UNKNOWN without its text', async () => {
    const c = await client()
    expect(await rejected(c.call('test.Echo', 'Deny', new Uint8Array(0)))).toMatchObject({
      code: 'TTRPC_STATUS',
      details: { grpcCode: GrpcCode.PERMISSION_DENIED, grpcMessage: 'denied' },
    })
    const err = await rejected(c.call('test.Echo', 'Crash', new Uint8Array(0)))
    expect(err).toMatchObject({ code: 'TTRPC_STATUS', details: { grpcCode: GrpcCode.UNKNOWN } })
    expect(err.details.grpcMessage).not.toContain('secret')
    expect(sink.records.some((r) => r.msg === 'handler failed' && (r.err as { message?: string }).message === 'secret internal detail')).toBe(true)
  })

  it('times out locally, sends timeout_nano, and the server aborts the handler at its deadline', async () => {
    const c = await client()
    const started = Date.now()
    const err = await rejected(c.call('test.Echo', 'Hang', new Uint8Array(0), { timeoutMs: 80 }))
    expect(err).toMatchObject({ code: 'TTRPC_TIMEOUT', details: { service: 'test.Echo', method: 'Hang', timeoutMs: 80 } })
    expect(Date.now() - started).toBeGreaterThanOrEqual(75)
    expect(c.pending).toBe(0)
    // The server's late DEADLINE_EXCEEDED answer for the settled stream is dropped, not fatal.
    await new Promise((r) => setTimeout(r, 60))
    expect(dec(await c.call('test.Echo', 'Echo', enc('still-up')))).toBe('still-up')
  })

  it('answers DEADLINE_EXCEEDED when only the server enforces the deadline', async () => {
    // A raw client that sends timeout_nano but never times out itself.
    const data = encodeRequest({ service: 'test.Echo', method: 'Hang', payload: new Uint8Array(0), timeoutNano: 30_000_000n, metadata: [] })
    const s = net.createConnection({ path: sock })
    const d = new FrameDecoder()
    const frame = await new Promise<{ streamId: number; data: Uint8Array }>((resolve) => {
      s.on('data', (chunk) => {
        const f = d.push(chunk)[0]
        if (f) resolve(f)
      })
      s.write(encodeFrame({ streamId: 1, type: 1, flags: 0, data }))
    })
    s.destroy()
    expect(frame.streamId).toBe(1)
    expect(decodeResponse(frame.data).status).toMatchObject({ code: GrpcCode.DEADLINE_EXCEEDED })
  })

  it('rejects with TTRPC_ABORTED when the caller aborts', async () => {
    const c = await client()
    const ac = new AbortController()
    const p = c.call('test.Echo', 'Hang', new Uint8Array(0), { signal: ac.signal })
    ac.abort()
    expect(await rejected(p)).toMatchObject({ code: 'TTRPC_ABORTED', details: { method: 'Hang' } })
    expect(await rejected(c.call('test.Echo', 'Echo', new Uint8Array(0), { signal: ac.signal }))).toMatchObject({ code: 'TTRPC_ABORTED' })
  })

  it('rejects every pending call with TTRPC_CLOSED when the connection drops', async () => {
    const c = await client()
    const pending = [1, 2, 3].map(() => c.call('test.Echo', 'Hang', new Uint8Array(0)))
    await new Promise((r) => setTimeout(r, 30))
    server.destroy()
    const errs = await Promise.all(pending.map(rejected))
    expect(errs.map((e) => [e.code, e.details.streamId])).toEqual([
      ['TTRPC_CLOSED', 1],
      ['TTRPC_CLOSED', 3],
      ['TTRPC_CLOSED', 5],
    ])
    expect(await rejected(c.call('test.Echo', 'Echo', new Uint8Array(0)))).toMatchObject({ code: 'TTRPC_CLOSED' })
  })

  it('close() waits for pending calls; close and destroy are idempotent', async () => {
    const c = await client()
    const p = c.call('test.Echo', 'Delay', enc('40'))
    const closing = c.close()
    expect(await rejected(c.call('test.Echo', 'Echo', new Uint8Array(0)))).toMatchObject({ code: 'TTRPC_CLOSED' })
    expect(dec(await p)).toBe('1:40')
    await closing
    await c.close()
    c.destroy()
    c.destroy()
    expect(c.closed).toBe(true)
  })

  it('answers RESOURCE_EXHAUSTED beyond the per-connection call limit', async () => {
    const limited = new TtrpcServer({ log, maxConcurrentCalls: 2 })
    limited.register('test.Echo', { Hang: (_p, ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))) })
    const limitedSock = path.join(dir, 'limited.sock')
    await limited.listen(limitedSock)
    try {
      const c = await TtrpcClient.connect(limitedSock, { log })
      clients.push(c)
      const calls = [1, 2, 3].map(() => c.call('test.Echo', 'Hang', new Uint8Array(0), { timeoutMs: 2000 }))
      expect(await rejected(calls[2]!)).toMatchObject({ code: 'TTRPC_STATUS', details: { grpcCode: GrpcCode.RESOURCE_EXHAUSTED, streamId: 5 } })
      c.destroy()
      await Promise.allSettled(calls)
    } finally {
      limited.destroy()
    }
  })

  it('refuses a timeout that Node timers cannot represent', async () => {
    const c = await client()
    expect(await rejected(c.call('test.Echo', 'Echo', new Uint8Array(0), { timeoutMs: 2 ** 31 }))).toMatchObject({ code: 'TTRPC_INVALID_ARGUMENT', details: { timeoutMs: 2 ** 31 } })
    expect(await rejected(c.call('test.Echo', 'Echo', new Uint8Array(0), { timeoutMs: -1 }))).toMatchObject({ code: 'TTRPC_INVALID_ARGUMENT' })
  })

  it('replaces a stale socket file but never deletes a regular file at the listen path', async () => {
    server.destroy()
    const again = new TtrpcServer({ log })
    await again.listen(sock) // the previous server's socket file is still there
    again.destroy()
    const file = path.join(dir, 'regular')
    await fs.writeFile(file, 'keep me')
    const other = new TtrpcServer({ log })
    expect(await rejected(other.listen(file))).toMatchObject({ code: 'TTRPC_LISTEN', details: { path: file, errno: 'EADDRINUSE' } })
    expect(await fs.readFile(file, 'utf8')).toBe('keep me')
  })

  it('close({ signal }) gives up waiting when the signal fires, on both ends', async () => {
    const c = await client()
    const hanging = c.call('test.Echo', 'Hang', new Uint8Array(0))
    await new Promise((r) => setTimeout(r, 20))
    await server.close({ signal: AbortSignal.timeout(30) })
    expect(server.connections).toBe(0)
    expect(await rejected(hanging)).toMatchObject({ code: 'TTRPC_CLOSED' })

    // A peer that accepts bytes and never answers.
    const silent = new Duplex({ read() {}, write: (_chunk, _enc, cb) => cb() })
    const c2 = new TtrpcClient(silent, { log })
    const never = c2.call('test.Echo', 'Echo', new Uint8Array(0))
    await c2.close({ signal: AbortSignal.timeout(20) })
    expect(await rejected(never)).toMatchObject({ code: 'TTRPC_CLOSED' })
  })

  it('fails to connect with TTRPC_CONNECT naming the path', async () => {
    const err = await rejected(TtrpcClient.connect(path.join(dir, 'absent.sock'), { log }))
    expect(err).toMatchObject({ code: 'TTRPC_CONNECT', details: { path: path.join(dir, 'absent.sock'), errno: 'ENOENT' } })
  })
})

describe('ttrpc server against a misbehaving peer', () => {
  it.each([
    ['an undecodable envelope', encodeFrame({ streamId: 1, type: 1, flags: 0, data: Uint8Array.from([0x0a, 0x7f, 0x41]) }), 'TTRPC_PROTOCOL'],
    ['an oversize header', Uint8Array.from([0x01, 0, 0, 0, 0, 0, 0, 1, 1, 0]), 'TTRPC_FRAME_TOO_LARGE'],
    ['an even stream id', encodeFrame({ streamId: 2, type: 1, flags: 0, data: encodeRequest({ service: 'test.Echo', method: 'Echo', payload: new Uint8Array(0), timeoutNano: 0n, metadata: [] }) }), 'TTRPC_PROTOCOL'],
    ['a Data frame on no stream', encodeFrame({ streamId: 1, type: 3, flags: 1, data: new Uint8Array(0) }), 'TTRPC_PROTOCOL'],
  ])('closes the connection on %s, logs why, and keeps serving others', async (_, bytes, reason) => {
    const good = await client()
    const hanging = good.call('test.Echo', 'Delay', enc('50'))
    const { received, closedByServer } = await rawExchange(bytes)
    expect(closedByServer).toBe(true)
    expect(received.byteLength).toBe(0)
    expect(sink.records.some((r) => r.msg === 'closing connection' && r.reason === reason)).toBe(true)
    // The other connection, and new ones, still work.
    expect(dec(await hanging)).toBe('1:50')
    expect(dec(await (await client()).call('test.Echo', 'Echo', enc('after')))).toBe('after')
  })

  it('logs TTRPC_TRUNCATED when a peer hangs up inside a frame', async () => {
    const frame = encodeFrame({ streamId: 1, type: 1, flags: 0, data: encodeRequest({ service: 'test.Echo', method: 'Echo', payload: enc('x'), timeoutNano: 0n, metadata: [] }) })
    await rawExchange(frame.subarray(0, frame.byteLength - 3), true)
    await new Promise((r) => setTimeout(r, 20))
    expect(sink.records.some((r) => r.msg === 'closing connection' && r.reason === 'TTRPC_TRUNCATED')).toBe(true)
    expect(dec(await (await client()).call('test.Echo', 'Echo', enc('after')))).toBe('after')
  })

  it('answers a reused stream id with INVALID_ARGUMENT and a streaming request with UNIMPLEMENTED', async () => {
    const req = encodeRequest({ service: 'test.Echo', method: 'Echo', payload: enc('x'), timeoutNano: 0n, metadata: [] })
    const s = net.createConnection({ path: sock })
    const d = new FrameDecoder()
    const frames = await new Promise<{ streamId: number; data: Uint8Array }[]>((resolve) => {
      const got: { streamId: number; data: Uint8Array }[] = []
      s.on('data', (chunk) => {
        got.push(...d.push(chunk))
        if (got.length === 3) resolve(got)
      })
      s.write(encodeFrame({ streamId: 5, type: 1, flags: 0, data: req }))
      s.write(encodeFrame({ streamId: 3, type: 1, flags: 0, data: req }))
      s.write(encodeFrame({ streamId: 7, type: 1, flags: 2, data: req }))
    })
    s.destroy()
    const byId = new Map(frames.map((f) => [f.streamId, decodeResponse(f.data)]))
    expect(byId.get(5)).toEqual({ status: { code: 0, message: '', details: [] }, payload: enc('x') })
    expect(byId.get(3)?.status?.code).toBe(GrpcCode.INVALID_ARGUMENT)
    expect(byId.get(7)?.status?.code).toBe(GrpcCode.UNIMPLEMENTED)
  })
})
