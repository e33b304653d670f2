// A unary ttrpc server. Requests are dispatched by (service, method) to
// handlers that run concurrently; each answer is one Response frame on the
// request's stream. A peer that breaks framing or sends an undecodable
// envelope loses its connection (the reason is logged); the server and its
// other connections carry on.

import fs from 'node:fs/promises'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { isMeshError } from '../errors.js'
import { GrpcCode, TtrpcError } from './errors.js'
import { encodeFrame, FrameDecoder, FrameType, type Frame } from './frame.js'
import { decodeRequest, encodeResponse, type Request, type Status } from './messages.js'

export interface CallContext {
  readonly service: string
  readonly method: string
  readonly streamId: number
  /** Lower-cased keys, values in arrival order. */
  readonly metadata: ReadonlyMap<string, readonly string[]>
  /** Aborted when the deadline passes or the connection goes away. */
  readonly signal: AbortSignal
}

/** Throw `statusError(code, msg)` to answer with that status; anything else answers UNKNOWN. */
export type UnaryHandler = (payload: Uint8Array, ctx: CallContext) => Uint8Array | Promise<Uint8Array>

export interface ServerOptions {
  readonly log: Logger
  /** Calls one connection may have in flight; more are answered RESOURCE_EXHAUSTED. Default 256. */
  readonly maxConcurrentCalls?: number
}

const OK_STATUS: Status = { code: GrpcCode.OK, message: '', details: [] }

export class TtrpcServer {
  readonly #log: Logger
  readonly #services = new Map<string, Map<string, UnaryHandler>>()
  readonly #connections = new Set<Connection>()
  #server: net.Server | undefined
  readonly #maxConcurrentCalls: number
  #nextConnId = 1
  #closed = false

  constructor(opts: ServerOptions) {
    this.#log = opts.log.child({ component: 'ttrpc', role: 'server' })
    this.#maxConcurrentCalls = opts.maxConcurrentCalls ?? 256
  }

  /** Registers the unary methods of a fully qualified service (e.g. `grpc.AgentService`). */
  register(service: string, methods: Readonly<Record<string, UnaryHandler>>): this {
    let table = this.#services.get(service)
    if (table === undefined) this.#services.set(service, (table = new Map()))
    for (const [name, handler] of Object.entries(methods)) table.set(name, handler)
    return this
  }

  /** Listens on a Unix socket path; a stale socket file there is replaced. */
  async listen(path: string): Promise<void> {
    if (this.#server !== undefined) throw new TtrpcError('TTRPC_INVALID_ARGUMENT', 'server is already listening', { path })
    // A socket left by a previous run would make listen() fail; anything else at that path is not ours to delete.
    const stale = await fs.lstat(path).catch(() => undefined)
    if (stale?.isSocket()) await fs.unlink(path)
    const server = net.createServer((socket) => this.handle(socket))
    this.#server = server
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(path, () => {
          server.off('error', reject)
          resolve()
        })
      })
    } catch (err) {
      this.#server = undefined
      throw new TtrpcError('TTRPC_LISTEN', `listen on ${path}: ${(err as Error).message}`, { path, errno: (err as NodeJS.ErrnoException).code }, { cause: err })
    }
    server.on('error', (err) => this.#log.error({ err }, 'listener error'))
    this.#log.info({ path }, 'listening')
  }

  /** Serves one already-connected stream (a Unix, vsock or test socket). */
  handle(socket: Duplex): void {
    if (this.#closed) {
      socket.destroy()
      return
    }
    const conn = new Connection(socket, this.#nextConnId++, this.#services, this.#maxConcurrentCalls, this.#log, () => this.#connections.delete(conn))
    this.#connections.add(conn)
  }

  get connections(): number {
    return this.#connections.size
  }

  /**
   * Stops accepting, waits for in-flight calls to be answered, then closes
   * connections. If `signal` fires first, the rest is done as by destroy().
   */
  async close(opts: { signal?: AbortSignal } = {}): Promise<void> {
    this.#closed = true
    const server = this.#server
    const stopped = server === undefined ? Promise.resolve() : new Promise<void>((resolve) => server.close(() => resolve()))
    const onAbort = (): void => this.destroy()
    if (opts.signal?.aborted) this.destroy()
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      await Promise.all([...this.#connections].map((c) => c.drain()))
      for (const c of this.#connections) c.destroy()
      await stopped
    } finally {
      opts.signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Closes every connection now; handlers see their signal abort. */
  destroy(): void {
    this.#closed = true
    for (const c of this.#connections) c.destroy()
    this.#server?.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

class Connection {
  readonly #socket: Duplex
  readonly #services: ReadonlyMap<string, ReadonlyMap<string, UnaryHandler>>
  readonly #log: Logger
  readonly #decoder = new FrameDecoder()
  readonly #inflight = new Map<number, AbortController>()
  readonly #onGone: () => void
  readonly #maxConcurrentCalls: number
  #lastStreamId = 0
  #gone = false
  #drained: (() => void) | undefined

  constructor(
    socket: Duplex,
    id: number,
    services: ReadonlyMap<string, ReadonlyMap<string, UnaryHandler>>,
    maxConcurrentCalls: number,
    log: Logger,
    onGone: () => void,
  ) {
    this.#socket = socket
    this.#maxConcurrentCalls = maxConcurrentCalls
    this.#services = services
    this.#log = log.child({ conn: id })
    this.#onGone = onGone
    if (socket instanceof net.Socket) socket.setNoDelay(true)
    socket.on('data', (chunk: Uint8Array) => this.#onData(chunk))
    socket.on('end', () => {
      try {
        this.#decoder.end()
      } catch (err) {
        this.#fail(err)
        return
      }
      // Half-close: the peer sends nothing more but may still read our answers.
      void this.drain().then(() => this.destroy())
    })
    socket.on('error', (err) => this.#fail(err))
    socket.on('close', () => this.destroy())
    this.#log.debug('connection accepted')
  }

  drain(): Promise<void> {
    if (this.#inflight.size === 0 || this.#gone) return Promise.resolve()
    return new Promise((resolve) => {
      const prev = this.#drained
      this.#drained = () => {
        prev?.()
        resolve()
      }
    })
  }

  destroy(): void {
    if (this.#gone) return
    this.#gone = true
    for (const ac of this.#inflight.values()) ac.abort(new TtrpcError('TTRPC_CLOSED', 'connection closed', {}))
    this.#inflight.clear()
    this.#drained?.()
    this.#socket.destroy()
    this.#onGone()
    this.#log.debug('connection closed')
  }

  /** The peer broke the protocol or the socket failed: log why and drop the connection. */
  #fail(err: unknown): void {
    if (this.#gone) return
    const code = (err as { code?: unknown }).code
    this.#log.warn({ err, reason: code }, 'closing connection')
    this.destroy()
  }

  #onData(chunk: Uint8Array): void {
    let frames: Frame[]
    try {
      frames = this.#decoder.push(chunk)
    } catch (err) {
      this.#fail(err)
      return
    }
    for (const f of frames) {
      if (this.#gone) return
      try {
        this.#onFrame(f)
      } catch (err) {
        this.#fail(err)
        return
      }
    }
  }

  #onFrame(f: Frame): void {
    if (f.streamId % 2 === 0) {
      throw new TtrpcError('TTRPC_PROTOCOL', `even stream id ${f.streamId} from client`, { streamId: f.streamId })
    }
    if (f.type !== FrameType.Request) {
      // Only unary calls are served, so a Data frame can only belong to a stream we rejected.
      throw new TtrpcError('TTRPC_PROTOCOL', `unexpected frame type ${f.type} on stream ${f.streamId}`, { streamId: f.streamId, type: f.type })
    }
    const req = decodeRequest(f.data)
    if (f.streamId <= this.#lastStreamId) {
      this.#respond(f.streamId, { code: GrpcCode.INVALID_ARGUMENT, message: `stream id ${f.streamId} not above ${this.#lastStreamId}`, details: [] })
      return
    }
    this.#lastStreamId = f.streamId
    if (f.flags !== 0) {
      this.#respond(f.streamId, { code: GrpcCode.UNIMPLEMENTED, message: `streaming ${req.service}/${req.method}`, details: [] })
      return
    }
    if (this.#inflight.size >= this.#maxConcurrentCalls) {
      this.#respond(f.streamId, { code: GrpcCode.RESOURCE_EXHAUSTED, message: `more than ${this.#maxConcurrentCalls} calls in flight`, details: [] })
      return
    }
    void this.#dispatch(f.streamId, req)
  }

  async #dispatch(streamId: number, req: Request): Promise<void> {
    const methods = this.#services.get(req.service)
    const handler = methods?.get(req.method)
    if (handler === undefined) {
      const message = methods === undefined ? `service ${req.service}` : `method ${req.method}`
      this.#log.debug({ stream: streamId, service: req.service, method: req.method }, 'unimplemented')
      this.#respond(streamId, { code: GrpcCode.UNIMPLEMENTED, message, details: [] })
      return
    }
    const ac = new AbortController()
    this.#inflight.set(streamId, ac)
    const metadata = new Map<string, string[]>()
    for (const kv of req.metadata) {
      const key = kv.key.toLowerCase()
      const list = metadata.get(key)
      if (list === undefined) metadata.set(key, [kv.value])
      else list.push(kv.value)
    }
    let timer: NodeJS.Timeout | undefined
    const deadline =
      req.timeoutNano > 0n
        ? new Promise<never>((_, reject) => {
            // Sub-millisecond deadlines round up so a tiny timeout still gets one tick.
            const ms = Number((req.timeoutNano + 999_999n) / 1_000_000n)
            timer = setTimeout(() => {
              const err = new TtrpcError('TTRPC_TIMEOUT', `deadline of ${ms} ms exceeded`, { timeoutMs: ms })
              ac.abort(err)
              reject(err)
            }, Math.min(ms, 0x7fff_ffff))
          })
        : undefined
    let status: Status = OK_STATUS
    let payload: Uint8Array = new Uint8Array(0)
    try {
      const ctx: CallContext = { service: req.service, method: req.method, streamId, metadata, signal: ac.signal }
      const work = Promise.resolve().then(() => handler(req.payload, ctx))
      payload = await (deadline === undefined ? work : Promise.race([work, deadline]))
      if (!(payload instanceof Uint8Array)) {
        throw new TypeError(`handler for ${req.service}/${req.method} returned ${typeof payload}, not bytes`)
      }
    } catch (err) {
      status = toStatus(err)
      payload = new Uint8Array(0)
      if (status.code === GrpcCode.UNKNOWN) {
        this.#log.warn({ err, stream: streamId, service: req.service, method: req.method }, 'handler failed')
      }
    } finally {
      if (timer !== undefined) clearTimeout(timer)
    }
    if (!this.#inflight.delete(streamId)) return // connection went away meanwhile
    this.#respond(streamId, status, payload)
    if (this.#inflight.size === 0) {
      const d = this.#drained
      this.#drained = undefined
      d?.()
    }
  }

  #respond(streamId: number, status: Status, payload: Uint8Array = new Uint8Array(0)): void {
    if (this.#gone) return
    let frame: Uint8Array
    try {
      frame = encodeFrame({ streamId, type: FrameType.Response, flags: 0, data: encodeResponse({ status, payload }) })
    } catch (err) {
      // An oversize answer becomes a status, not a dead connection.
      this.#log.warn({ err, stream: streamId }, 'response not encodable')
      frame = encodeFrame({
        streamId,
        type: FrameType.Response,
        flags: 0,
        data: encodeResponse({ status: { code: GrpcCode.RESOURCE_EXHAUSTED, message: 'response exceeds maximum frame size', details: [] }, payload: new Uint8Array(0) }),
      })
    }
    this.#socket.write(frame)
  }
}

function toStatus(err: unknown): Status {
  if (isMeshError(err)) {
    if (err.code === 'TTRPC_STATUS' && typeof err.details.grpcCode === 'number') {
      return { code: err.details.grpcCode, message: typeof err.details.grpcMessage === 'string' ? err.details.grpcMessage : err.message, details: [] }
    }
    if (err.code === 'TTRPC_TIMEOUT') return { code: GrpcCode.DEADLINE_EXCEEDED, message: 'timeout', details: [] }
  }
  return { code: GrpcCode.UNKNOWN, message: 'handler failed', details: [] }
}
