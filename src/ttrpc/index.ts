export { TtrpcError, GrpcCode, statusError, type TtrpcCode } from './errors.js'
export {
  FRAME_HEADER_BYTES,
  MAX_FRAME_BYTES,
  FrameType,
  FrameFlags,
  FrameDecoder,
  parseFrameHeader,
  encodeFrame,
  peekFrame,
  type Frame,
  type FrameHeader,
  type PeekResult,
} from './frame.js'
export {
  encodeRequest,
  decodeRequest,
  encodeResponse,
  decodeResponse,
  messageType,
  decode,
  type Request,
  type Response,
  type Status,
  type KeyValue,
} from './messages.js'
export { TtrpcClient, type CallOptions, type ClientOptions } from './client.js'
export { TtrpcServer, type CallContext, type UnaryHandler, type ServerOptions } from './server.js'
