// The ttrpc envelope messages (containerd/ttrpc request.proto), defined by
// reflection so no .proto file has to be located at run time. Field numbers
// are the wire contract; names only matter to protobufjs.

import protobuf from 'protobufjs'
import { TtrpcError } from './errors.js'

const { Field, Type, Root } = protobuf

const KeyValueType = new Type('KeyValue').add(new Field('key', 1, 'string')).add(new Field('value', 2, 'string'))
const AnyType = new Type('Any').add(new Field('typeUrl', 1, 'string')).add(new Field('value', 2, 'bytes'))
const StatusType = new Type('Status')
  .add(new Field('code', 1, 'int32'))
  .add(new Field('message', 2, 'string'))
  .add(new Field('details', 3, 'Any', 'repeated'))
const RequestType = new Type('Request')
  .add(new Field('service', 1, 'string'))
  .add(new Field('method', 2, 'string'))
  .add(new Field('payload', 3, 'bytes'))
  .add(new Field('timeoutNano', 4, 'int64'))
  .add(new Field('metadata', 5, 'KeyValue', 'repeated'))
const ResponseType = new Type('Response').add(new Field('status', 1, 'Status')).add(new Field('payload', 2, 'bytes'))

new Root().define('ttrpc').add(KeyValueType).add(AnyType).add(StatusType).add(RequestType).add(ResponseType).root.resolveAll()

export interface KeyValue {
  readonly key: string
  readonly value: string
}

export interface Status {
  readonly code: number
  readonly message: string
  readonly details: readonly { readonly typeUrl: string; readonly value: Uint8Array }[]
}

export interface Request {
  readonly service: string
  readonly method: string
  readonly payload: Uint8Array
  /** 0 = no deadline. */
  readonly timeoutNano: bigint
  readonly metadata: readonly KeyValue[]
}

export interface Response {
  /** Absent on the wire means OK (Go and Rust clients agree). */
  readonly status: Status | undefined
  readonly payload: Uint8Array
}

const EMPTY = new Uint8Array(0)

// protobufjs writes every field that is set, but proto3 peers (Go, Rust) omit
// defaults; leaving out empty payloads and a zero timeout keeps our bytes
// identical to theirs.
export function encodeRequest(req: Request): Uint8Array {
  const msg: Record<string, unknown> = { service: req.service, method: req.method }
  if (req.payload.byteLength > 0) msg.payload = req.payload
  if (req.timeoutNano !== 0n) msg.timeoutNano = req.timeoutNano.toString() // protobufjs parses int64 strings with long.js, exactly
  if (req.metadata.length > 0) msg.metadata = req.metadata.map((kv) => ({ key: kv.key, value: kv.value }))
  return RequestType.encode(msg).finish()
}

export function encodeResponse(res: Response): Uint8Array {
  const msg: Record<string, unknown> = {}
  if (res.status !== undefined) {
    const s: Record<string, unknown> = {}
    if (res.status.code !== 0) s.code = res.status.code
    if (res.status.message !== '') s.message = res.status.message
    if (res.status.details.length > 0) s.details = res.status.details
    msg.status = s
  }
  if (res.payload.byteLength > 0) msg.payload = res.payload
  return ResponseType.encode(msg).finish()
}

export function decodeRequest(data: Uint8Array): Request {
  const m = decode(RequestType, data, 'Request')
  return {
    service: str(m.service),
    method: str(m.method),
    payload: bytes(m.payload),
    timeoutNano: int64(m.timeoutNano),
    metadata: Array.isArray(m.metadata)
      ? m.metadata.map((kv: Record<string, unknown>) => ({ key: str(kv.key), value: str(kv.value) }))
      : [],
  }
}

export function decodeResponse(data: Uint8Array): Response {
  const m = decode(ResponseType, data, 'Response')
  const s = m.status as Record<string, unknown> | null | undefined
  return {
    status:
      s == null
        ? undefined
        : {
            code: typeof s.code === 'number' ? s.code : 0,
            message: str(s.message),
            details: Array.isArray(s.details)
              ? s.details.map((d: Record<string, unknown>) => ({ typeUrl: str(d.typeUrl), value: bytes(d.value) }))
              : [],
          },
    payload: bytes(m.payload),
  }
}

/** Defines a method's own request/response message by field numbers, for callers without a .proto. */
export function messageType(name: string, fields: readonly (readonly [name: string, id: number, type: string, rule?: 'repeated'])[]): protobuf.Type {
  const t = new Type(name)
  for (const [fname, id, type, rule] of fields) t.add(new Field(fname, id, type, rule))
  new Root().add(t).resolveAll()
  return t
}

/** Decodes with protobufjs, turning its RangeError/Error on bad input into TTRPC_PROTOCOL. */
export function decode(type: protobuf.Type, data: Uint8Array, what: string): Record<string, any> {
  try {
    return type.decode(data) as unknown as Record<string, any>
  } catch (err) {
    throw new TtrpcError('TTRPC_PROTOCOL', `cannot decode ${what} (${data.byteLength} B): ${(err as Error).message}`, { message: what, length: data.byteLength }, { cause: err })
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : ''
}

function bytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return Uint8Array.from(v)
  return EMPTY
}

function int64(v: unknown): bigint {
  if (typeof v === 'number') return BigInt(v)
  if (v !== null && typeof v === 'object' && 'toString' in v) return BigInt(String(v))
  return 0n
}
