import { MeshError } from '../errors.js'

export type TtrpcCode =
  /** Input ended inside a frame header or body; details name the field and offset. */
  | 'TTRPC_TRUNCATED'
  /** A header announced more than MAX_FRAME_BYTES; rejected before buffering the body. */
  | 'TTRPC_FRAME_TOO_LARGE'
  /** The peer broke the protocol: bad stream id, frame type, undecodable envelope. */
  | 'TTRPC_PROTOCOL'
  /** A call did not complete within its timeout. */
  | 'TTRPC_TIMEOUT'
  /** The caller's AbortSignal fired. */
  | 'TTRPC_ABORTED'
  /** The connection closed (or was never usable) while the call was pending. */
  | 'TTRPC_CLOSED'
  /** The connection could not be established. */
  | 'TTRPC_CONNECT'
  /** The server could not listen on its address. */
  | 'TTRPC_LISTEN'
  /** The remote answered with a non-OK status; details.grpcCode carries the code. */
  | 'TTRPC_STATUS'
  /** The caller passed something the protocol cannot carry. */
  | 'TTRPC_INVALID_ARGUMENT'

export class TtrpcError extends MeshError<TtrpcCode> {}

/** gRPC status codes, as carried in a ttrpc Response's Status.code. */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const

export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode]

/**
 * What a server handler throws to answer with a specific status code.
 * Any other thrown value is answered with UNKNOWN and a generic message, so
 * internal error text never reaches the peer.
 */
export function statusError(grpcCode: number, message: string): TtrpcError {
  return new TtrpcError('TTRPC_STATUS', message, { grpcCode, grpcMessage: message })
}
