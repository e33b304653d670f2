// A unary ttrpc client: many calls multiplexed on one connection, each on its
// own odd stream id. Every call settles exactly once: by its Response, its
// timeout, its AbortSignal, or the connection going away.

import net from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { TtrpcError, GrpcCode } from './errors.js'
import { encodeFrame, FrameDecoder, FrameType, type Frame } from './frame.js'
import { decodeResponse, encodeRequest, type KeyValue } from './messages.js'

export interface CallOptions {
  /** Sent as timeout_nano and enforced here; 0 or absent uses the client default. */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
  /** Keys are lower-cased on the wire; an array value becomes one entry per value. */
  readonly metadata?: Readonly<Record<string, string | readonly string[]>>
}

export interface ClientOptions {
  readonly log: Logger
  /** Applied when a call gives no timeout; 0 = none. */
  readonly defaultTimeoutMs?: number
}

interface Pending {
  readonly service: string
  readonly method: string
  resolve(payload: Uint8Array): void
  reject(err: unknown): void
}

const MAX_STREAM_ID = 0xffff_ffff
const MAX_TIMEOUT_MS = 0x7fff_ffff

export class TtrpcClient {
  readonly #socket: Duplex
  readonly #log: Logger
  readonly #defaultTimeoutMs: number
  readonly #decoder = new FrameDecoder()
  readonly #pending = new Map<number, Pending>()
  #nextStreamId = 1
  #closing = false
  #closed: TtrpcError | undefined
  #drained: (() => void) | undefined

  /** Connects to a Unix socket (`/path` or `unix:///path`). */
  static connect(path: string, opts: ClientOptions & { signal?: AbortSignal }): Promise<TtrpcClient> {
    const socketPath = path.startsWith('unix://') ? path.slice('unix://'.length) : path
    return new Promise((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(new TtrpcError('TTRPC_ABORTED', `connect to ${socketPath} aborted`, { path: socketPath }, { cause: opts.signal.reason }))
        return
      }
      const socket = net.createConnection({ path: socketPath })
      const onAbort = (): void => {
        socket.destroy()
        reject(new TtrpcError('TTRPC_ABORTED', `connect to ${socketPath} aborted`, { path: socketPath }, { cause: opts.signal?.reason }))
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      socket.once('error', (err) => {
        opts.signal?.removeEventListener('abort', onAbort)
        reject(new TtrpcError('TTRPC_CONNECT', `connect to ${socketPath}: ${err.message}`, { path: socketPath, errno: (err as NodeJS.ErrnoException).code }, { cause: err }))
      })
      socket.once('connect', () => {
        opts.signal?.removeEventListener('abort', onAbort)
        socket.removeAllListeners('error')
        resolve(new TtrpcClient(socket, { ...opts, log: opts.log.child({ peer: { path: socketPath } }) }))
      })
    })
  }

  constructor(socket: Duplex, opts: ClientOptions) {
    this.#socket = socket
    this.#log = opts.log.child({ component: 'ttrpc', role: 'client' })
    this.#defaultTimeoutMs = opts.defaultTimeoutMs ?? 0
    if (socket instanceof net.Socket) socket.setNoDelay(true)
    socket.on('data', (chunk: Uint8Array) => this.#onData(chunk))
    socket.on('error', (err) => this.destroy(err))
    socket.on('close', () => this.destroy())
    socket.on('end', () => {
      try {
        this.#decoder.end()
      } catch (err) {
        this.destroy(err)
        return
      }
      this.destroy()
    })
  }

  /** Calls in flight. */
  get pending(): number {
    return this.#pending.size
  }

  get closed(): boolean {
    return this.#closed !== undefined || this.#closing
  }

  call(service: string, method: string, payload: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    if (this.#closed !== undefined || this.#closing) {
      return Promise.reject(new TtrpcError('TTRPC_CLOSED', `call ${service}/${method}: client is closed`, { service, method }, { cause: this.#closed }))
    }
    if (opts.signal?.aborted) {
      return Promise.reject(new TtrpcError('TTRPC_ABORTED', `call ${service}/${method} aborted`, { service, method }, { cause: opts.signal.reason }))
    }
    const timeoutMs = opts.timeoutMs ?? this.#defaultTimeoutMs
    // Node timers overflow above 2^31-1 ms (they would fire at once): refuse rather than misbehave.
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_TIMEOUT_MS) {
      return Promise.reject(new TtrpcError('TTRPC_INVALID_ARGUMENT', `timeout ${timeoutMs} ms is not in 0..${MAX_TIMEOUT_MS}`, { timeoutMs }))
    }
    if (this.#nextStreamId > MAX_STREAM_ID) {
      return Promise.reject(new TtrpcError('TTRPC_CLOSED', 'stream ids exhausted on this connection', { service, method }))
    }
    const streamId = this.#nextStreamId
    this.#nextStreamId += 2

    let frame: Uint8Array
    try {
      frame = encodeFrame({
        streamId,
        type: FrameType.Request,
        flags: 0,
        data: encodeRequest({
          service,
          method,
          payload,
          timeoutNano: BigInt(Math.round(timeoutMs * 1e6)),
          metadata: toKeyValues(opts.metadata),
        }),
      })
    } catch (err) {
      return Promise.reject(err)
    }

    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const signal = opts.signal
      const onAbort = (): void =>
        settle(new TtrpcError('TTRPC_ABORTED', `call ${service}/${method} aborted`, { service, method, streamId }, { cause: signal?.reason }))
      // The one exit for this call: removes every hook so nothing fires twice.
      const settle = (err: unknown, value?: Uint8Array): void => {
        if (!this.#pending.delete(streamId)) return
        if (timer !== undefined) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        if (err === undefined) resolve(value!)
        else reject(err)
        if (this.#pending.size === 0) this.#drained?.()
      }
      this.#pending.set(streamId, {
        service,
        method,
        resolve: (v) => settle(undefined, v),
        reject: (e) => settle(e),
      })
      if (timeoutMs > 0) {
        timer = setTimeout(
          () => settle(new TtrpcError('TTRPC_TIMEOUT', `call ${service}/${method} timed out after ${timeoutMs} ms`, { service, method, streamId, timeoutMs })),
          timeoutMs,
        )
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#socket.write(frame)
    })
  }

  /**
   * Graceful: refuses new calls, lets pending ones finish, then ends the
   * connection. If `signal` fires first, pending calls are rejected as by destroy().
   */
  async close(opts: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#closed !== undefined) return
    this.#closing = true
    if (opts.signal?.aborted) this.destroy(opts.signal.reason)
    if (this.#pending.size > 0 && this.#closed === undefined) {
      const onAbort = (): void => this.destroy(opts.signal?.reason)
      opts.signal?.addEventListener('abort', onAbort, { once: true })
      await new Promise<void>((resolve) => {
        const prev = this.#drained
        this.#drained = () => {
          prev?.()
          resolve()
        }
      })
      opts.signal?.removeEventListener('abort', onAbort)
    }
    this.destroy()
  }

  /** Forceful: rejects every pending call with TTRPC_CLOSED (cause = err). Idempotent. */
  destroy(err?: unknown): void {
    if (this.#closed !== undefined) return
    this.#closed = new TtrpcError('TTRPC_CLOSED', err === undefined ? 'connection closed' : `connection closed: ${(err as Error).message}`, { pending: this.#pending.size }, err === undefined ? undefined : { cause: err })
    if (err !== undefined) this.#log.warn({ err, pending: this.#pending.size }, 'connection lost')
    else this.#log.debug({ pending: this.#pending.size }, 'connection closed')
    for (const [streamId, p] of [...this.#pending]) {
      p.reject(new TtrpcError('TTRPC_CLOSED', `call ${p.service}/${p.method}: connection closed`, { service: p.service, method: p.method, streamId }, { cause: err }))
    }
    this.#drained?.()
    this.#socket.destroy()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  #onData(chunk: Uint8Array): void {
    let frames: Frame[]
    try {
      frames = this.#decoder.push(chunk)
    } catch (err) {
      this.destroy(err)
      return
    }
    for (const f of frames) {
      if (this.#closed !== undefined) return
      this.#onFrame(f)
    }
  }

  #onFrame(f: Frame): void {
    const p = this.#pending.get(f.streamId)
    if (p === undefined) {
      // A late answer to a call that timed out or was aborted is expected;
      // an id we never used means the peer is confused.
      if (f.streamId % 2 === 1 && f.streamId < this.#nextStreamId) {
        this.#log.debug({ stream: f.streamId, type: f.type }, 'frame for a settled call dropped')
        return
      }
      this.destroy(new TtrpcError('TTRPC_PROTOCOL', `frame for unknown stream ${f.streamId}`, { streamId: f.streamId, type: f.type }))
      return
    }
    if (f.type !== FrameType.Response) {
      p.reject(new TtrpcError('TTRPC_PROTOCOL', `unexpected frame type ${f.type} on unary stream ${f.streamId}`, { streamId: f.streamId, type: f.type }))
      return
    }
    let res
    try {
      res = decodeResponse(f.data)
    } catch (err) {
      p.reject(err)
      return
    }
    const status = res.status
    if (status !== undefined && status.code !== GrpcCode.OK) {
      p.reject(
        new TtrpcError('TTRPC_STATUS', `${p.service}/${p.method}: status ${status.code} ${status.message}`, {
          service: p.service,
          method: p.method,
          streamId: f.streamId,
          grpcCode: status.code,
          grpcMessage: status.message,
        }),
      )
      return
    }
    p.resolve(res.payload)
  }
}

function toKeyValues(md: CallOptions['metadata']): KeyValue[] {
  if (md === undefined) return []
  const out: KeyValue[] = []
  for (const [k, v] of Object.entries(md)) {
    const key = k.toLowerCase()
    for (const value of typeof v === 'string' ? [v] : v) out.push({ key, value })
  }
  return out
}
