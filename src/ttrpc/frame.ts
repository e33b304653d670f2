// ttrpc framing: a 10-byte big-endian header (u32 data length, u32 stream id,
// u8 type, u8 flags) followed by the protobuf data. The length is checked
// against MAX_FRAME_BYTES as soon as the header is complete, so a hostile
// peer cannot make us buffer more than one header plus 4 MiB.

import { TtrpcError } from './errors.js'

export const FRAME_HEADER_BYTES = 10
/** Largest data length a frame may announce (4 << 20), as in containerd/ttrpc. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024

export const FrameType = {
  Request: 0x01,
  Response: 0x02,
  Data: 0x03,
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]

export const FrameFlags = {
  RemoteClosed: 0x01,
  RemoteOpen: 0x02,
  NoData: 0x04,
} as const

export interface FrameHeader {
  /** Data length in bytes, excluding the header. */
  readonly length: number
  readonly streamId: number
  readonly type: number
  readonly flags: number
}

export interface Frame {
  readonly streamId: number
  readonly type: number
  readonly flags: number
  readonly data: Uint8Array
}

const HEADER_FIELDS = [
  { field: 'length', offset: 0, size: 4 },
  { field: 'streamId', offset: 4, size: 4 },
  { field: 'type', offset: 8, size: 1 },
  { field: 'flags', offset: 9, size: 1 },
] as const

/**
 * Reads a frame header from the start of `bytes`. Throws TTRPC_TRUNCATED naming
 * the first incomplete field, or TTRPC_FRAME_TOO_LARGE when the announced length
 * exceeds `maxBytes`.
 */
export function parseFrameHeader(bytes: Uint8Array, maxBytes: number = MAX_FRAME_BYTES): FrameHeader {
  for (const f of HEADER_FIELDS) {
    if (bytes.byteLength < f.offset + f.size) {
      throw new TtrpcError('TTRPC_TRUNCATED', `frame header ${f.field}: need ${f.size} B at offset ${f.offset}, have ${Math.max(0, bytes.byteLength - f.offset)} B`, {
        field: f.field,
        offset: f.offset,
        need: f.size,
        have: Math.max(0, bytes.byteLength - f.offset),
      })
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, FRAME_HEADER_BYTES)
  const header: FrameHeader = {
    length: view.getUint32(0, false),
    streamId: view.getUint32(4, false),
    type: view.getUint8(8),
    flags: view.getUint8(9),
  }
  if (header.length > maxBytes) {
    throw new TtrpcError('TTRPC_FRAME_TOO_LARGE', `frame data ${header.length} B > ${maxBytes} B (stream ${header.streamId})`, {
      streamId: header.streamId,
      length: header.length,
      max: maxBytes,
    })
  }
  return header
}

/** Header plus data in one buffer, ready to write. */
export function encodeFrame(frame: Frame, maxBytes: number = MAX_FRAME_BYTES): Uint8Array {
  const { streamId, type, flags, data } = frame
  if (data.byteLength > maxBytes) {
    throw new TtrpcError('TTRPC_FRAME_TOO_LARGE', `frame data ${data.byteLength} B > ${maxBytes} B (stream ${streamId})`, {
      streamId,
      length: data.byteLength,
      max: maxBytes,
    })
  }
  for (const [field, value, max] of [['streamId', streamId, 0xffff_ffff], ['type', type, 0xff], ['flags', flags, 0xff]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new TtrpcError('TTRPC_INVALID_ARGUMENT', `frame ${field} ${value} outside 0..${max}`, { field, value })
    }
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + data.byteLength)
  const view = new DataView(out.buffer)
  view.setUint32(0, data.byteLength, false)
  view.setUint32(4, streamId, false)
  view.setUint8(8, type)
  view.setUint8(9, flags)
  out.set(data, FRAME_HEADER_BYTES)
  return out
}

export type PeekResult =
  /** More bytes are needed; `need` is the total the buffer must hold to make progress. */
  | { readonly complete: false; readonly need: number }
  /** A whole frame; `data` is a view into the input, `size` the bytes it occupies. */
  | { readonly complete: true; readonly header: FrameHeader; readonly data: Uint8Array; readonly size: number }

/**
 * Pure look at the start of `buffer`: no copies, no state. Throws
 * TTRPC_FRAME_TOO_LARGE from the header alone, before any body is buffered.
 */
export function peekFrame(buffer: Uint8Array, maxBytes: number = MAX_FRAME_BYTES): PeekResult {
  if (buffer.byteLength < FRAME_HEADER_BYTES) return { complete: false, need: FRAME_HEADER_BYTES }
  const header = parseFrameHeader(buffer, maxBytes)
  const size = FRAME_HEADER_BYTES + header.length
  if (buffer.byteLength < size) return { complete: false, need: size }
  return { complete: true, header, data: buffer.subarray(FRAME_HEADER_BYTES, size), size }
}

/**
 * Turns a byte stream into frames. Chunks are kept as a list and joined only
 * once a header or a whole body is present, so a large frame arriving in many
 * chunks is copied once. Emitted `data` is a fresh copy: it must not pin the
 * socket's slab.
 */
export class FrameDecoder {
  readonly #maxBytes: number
  #chunks: Uint8Array[] = []
  #buffered = 0
  #header: FrameHeader | undefined

  constructor(maxBytes: number = MAX_FRAME_BYTES) {
    this.#maxBytes = maxBytes
  }

  /** Bytes held that do not yet form a frame. */
  get buffered(): number {
    return this.#buffered + (this.#header === undefined ? 0 : FRAME_HEADER_BYTES)
  }

  push(chunk: Uint8Array): Frame[] {
    if (chunk.byteLength > 0) {
      this.#chunks.push(chunk)
      this.#buffered += chunk.byteLength
    }
    const frames: Frame[] = []
    for (;;) {
      if (this.#header === undefined) {
        if (this.#buffered < FRAME_HEADER_BYTES) break
        this.#header = parseFrameHeader(this.#take(FRAME_HEADER_BYTES), this.#maxBytes)
      }
      const h = this.#header
      if (this.#buffered < h.length) break
      frames.push({ streamId: h.streamId, type: h.type, flags: h.flags, data: this.#take(h.length) })
      this.#header = undefined
    }
    return frames
  }

  /** Call at end of stream: leftover bytes mean the peer stopped inside a frame. */
  end(): void {
    if (this.#header !== undefined) {
      throw new TtrpcError('TTRPC_TRUNCATED', `stream ended inside frame data: need ${this.#header.length} B, have ${this.#buffered} B`, {
        field: 'data',
        offset: FRAME_HEADER_BYTES,
        need: this.#header.length,
        have: this.#buffered,
        streamId: this.#header.streamId,
      })
    }
    if (this.#buffered > 0) {
      // Reuse the header parser so the error names the field the stream stopped in.
      parseFrameHeader(this.#take(this.#buffered), this.#maxBytes)
    }
  }

  /** Removes exactly n bytes (n <= buffered) from the front, as a new array. */
  #take(n: number): Uint8Array {
    const out = new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const head = this.#chunks[0]!
      const want = n - filled
      if (head.byteLength <= want) {
        out.set(head, filled)
        filled += head.byteLength
        this.#chunks.shift()
      } else {
        out.set(head.subarray(0, want), filled)
        this.#chunks[0] = head.subarray(want)
        filled += want
      }
    }
    this.#buffered -= n
    return out
  }
}
