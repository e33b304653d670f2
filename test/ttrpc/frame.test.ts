import { describe, it, expect } from 'vitest'
import { encodeFrame, FrameDecoder, MAX_FRAME_BYTES, parseFrameHeader, peekFrame } from '../../src/ttrpc/frame.js'
import { thrown } from '../support.js'

const HDR = Uint8Array.from([0, 0, 0, 4, 0, 0, 0, 1, 1, 0]) // len 4, stream 1, type 1

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
}

describe('parseFrameHeader', () => {
  it('reads a request header', () => {
    expect(parseFrameHeader(HDR)).toEqual({ length: 4, streamId: 1, type: 1, flags: 0 })
  })

  it('reads big-endian fields wider than one byte', () => {
    expect(parseFrameHeader(hex('00 01 02 03 80 00 00 05 03 05'))).toEqual({ length: 0x010203, streamId: 0x80000005, type: 3, flags: 5 })
  })

  it('honours the Buffer byteOffset (a window into a larger slab)', () => {
    const slab = Buffer.alloc(64, 0xee)
    slab.set(HDR, 17)
    expect(parseFrameHeader(slab.subarray(17, 27))).toEqual({ length: 4, streamId: 1, type: 1, flags: 0 })
  })

  it.each([
    [0, 'length', 0, 0],
    [1, 'length', 0, 1],
    [3, 'length', 0, 3],
    [4, 'streamId', 4, 0],
    [5, 'streamId', 4, 1],
    [7, 'streamId', 4, 3],
    [8, 'type', 8, 0],
    [9, 'flags', 9, 0],
  ])('cut to %i bytes: %s at offset %i', (n, field, offset, have) => {
    const err = thrown(() => parseFrameHeader(HDR.subarray(0, n)))
    expect(err).toMatchObject({ code: 'TTRPC_TRUNCATED', details: { field, offset, have } })
  })

  it('rejects a length above 4 MiB from the header alone', () => {
    const err = thrown(() => parseFrameHeader(hex('00 40 00 01 00 00 00 07 01 00')))
    expect(err).toMatchObject({ code: 'TTRPC_FRAME_TOO_LARGE', details: { length: MAX_FRAME_BYTES + 1, streamId: 7, max: MAX_FRAME_BYTES } })
  })

  it('accepts exactly 4 MiB', () => {
    expect(parseFrameHeader(hex('00 40 00 00 00 00 00 01 01 00')).length).toBe(MAX_FRAME_BYTES)
  })
})

describe('peekFrame', () => {
  const frame = encodeFrame({ streamId: 3, type: 2, flags: 0, data: hex('0a 00') })

  it('asks for a header first', () => {
    expect(peekFrame(frame.subarray(0, 6))).toEqual({ complete: false, need: 10 })
  })

  it('asks for the whole frame once the header is known', () => {
    expect(peekFrame(frame.subarray(0, 11))).toEqual({ complete: false, need: 12 })
  })

  it('returns a view of the data and the size consumed, leaving the input alone', () => {
    const buf = new Uint8Array([...frame, 0xaa, 0xbb])
    const copy = Uint8Array.from(buf)
    const r = peekFrame(buf)
    expect(r).toMatchObject({ complete: true, size: 12, header: { length: 2, streamId: 3, type: 2, flags: 0 } })
    if (!r.complete) throw new Error('unreachable')
    expect(Array.from(r.data)).toEqual([0x0a, 0x00])
    expect(r.data.buffer).toBe(buf.buffer)
    expect(buf).toEqual(copy)
  })

  it('throws FRAME_TOO_LARGE with only 10 bytes buffered', () => {
    const err = thrown(() => peekFrame(hex('ff ff ff ff 00 00 00 01 01 00')))
    expect(err).toMatchObject({ code: 'TTRPC_FRAME_TOO_LARGE', details: { length: 0xffffffff } })
  })

  it('applies a caller-chosen smaller limit', () => {
    const err = thrown(() => peekFrame(frame, 1))
    expect(err).toMatchObject({ code: 'TTRPC_FRAME_TOO_LARGE', details: { length: 2, max: 1 } })
  })
})

describe('encodeFrame', () => {
  it('refuses data above the limit', () => {
    const err = thrown(() => encodeFrame({ streamId: 1, type: 1, flags: 0, data: new Uint8Array(MAX_FRAME_BYTES + 1) }))
    expect(err).toMatchObject({ code: 'TTRPC_FRAME_TOO_LARGE', details: { length: MAX_FRAME_BYTES + 1 } })
  })

  it.each([
    ['streamId', { streamId: 2 ** 32, type: 1, flags: 0 }],
    ['streamId', { streamId: -1, type: 1, flags: 0 }],
    ['type', { streamId: 1, type: 256, flags: 0 }],
    ['flags', { streamId: 1, type: 1, flags: 1.5 }],
  ])('refuses an out-of-range %s', (field, h) => {
    const err = thrown(() => encodeFrame({ ...h, data: new Uint8Array(0) }))
    expect(err).toMatchObject({ code: 'TTRPC_INVALID_ARGUMENT', details: { field } })
  })
})

describe('FrameDecoder', () => {
  const a = encodeFrame({ streamId: 1, type: 1, flags: 0, data: Uint8Array.from([1, 2, 3]) })
  const b = encodeFrame({ streamId: 3, type: 1, flags: 0, data: new Uint8Array(0) })
  const c = encodeFrame({ streamId: 5, type: 3, flags: 1, data: Uint8Array.from({ length: 300 }, (_, i) => i & 0xff) })
  const all = new Uint8Array([...a, ...b, ...c])

  it('splits a stream delivered one byte at a time', () => {
    const d = new FrameDecoder()
    const got = []
    for (let i = 0; i < all.length; i++) got.push(...d.push(all.subarray(i, i + 1)))
    expect(got.map((f) => [f.streamId, f.type, f.flags, f.data.length])).toEqual([
      [1, 1, 0, 3],
      [3, 1, 0, 0],
      [5, 3, 1, 300],
    ])
    expect(Array.from(got[2]!.data.subarray(250, 260))).toEqual([250, 251, 252, 253, 254, 255, 0, 1, 2, 3])
    expect(d.buffered).toBe(0)
    expect(() => d.end()).not.toThrow()
  })

  it('splits several frames in one chunk and copies data out of the chunk', () => {
    const d = new FrameDecoder()
    const chunk = Uint8Array.from(all)
    const got = d.push(chunk)
    expect(got).toHaveLength(3)
    expect(got[0]!.data.buffer).not.toBe(chunk.buffer)
  })

  it('rejects an oversize header before its body arrives', () => {
    const d = new FrameDecoder()
    expect(d.push(hex('00 50 00'))).toEqual([])
    const err = thrown(() => d.push(hex('00 00 00 00 09 01 00')))
    expect(err).toMatchObject({ code: 'TTRPC_FRAME_TOO_LARGE', details: { streamId: 9, length: 0x500000 } })
  })

  it.each([
    [3, 'length'],
    [9, 'flags'],
    [12, 'data'],
  ])('end() inside a frame (%i bytes) is TRUNCATED at %s', (n, field) => {
    const d = new FrameDecoder()
    d.push(a.subarray(0, n))
    expect(thrown(() => d.end())).toMatchObject({ code: 'TTRPC_TRUNCATED', details: { field } })
  })
})
