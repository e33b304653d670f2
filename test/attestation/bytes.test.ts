import { describe, it, expect } from 'vitest'
import { ByteReader, readLayout } from '../../src/attestation/bytes.js'
import { ParseError } from '../../src/attestation/errors.js'
import { thrown } from '../support.js'

describe('ByteReader', () => {
  it('reads little-endian integers and advances', () => {
    const r = new ByteReader(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]))
    expect(r.u8('a')).toBe(1)
    expect(r.u16('b')).toBe(0x0302)
    expect(r.u32('c')).toBe(0x07060504)
    expect(r.u64('d')).toBe(0x0f0e0d0c0b0a0908n)
    expect(r.remaining).toBe(0)
  })

  it('honours the byteOffset of a Buffer that is a window into a larger slab', () => {
    const slab = Buffer.alloc(64, 0xee)
    slab.writeUInt32LE(0xdeadbeef, 40)
    const window = slab.subarray(40, 48)
    expect(window.byteOffset).toBe(40)
    const r = new ByteReader(window)
    expect(r.u32('x')).toBe(0xdeadbeef)
    expect([...r.bytesView(4, 'y')]).toEqual([0xee, 0xee, 0xee, 0xee])
    expect(thrown(() => r.u8('z'))).toBeInstanceOf(ParseError)
  })

  it.each([
    ['u8', 0, (r: ByteReader) => r.u8('f'), 1],
    ['u16', 1, (r: ByteReader) => r.u16('f'), 2],
    ['u32', 3, (r: ByteReader) => r.u32('f'), 4],
    ['u64', 7, (r: ByteReader) => r.u64('f'), 8],
    ['bytes', 5, (r: ByteReader) => r.bytesView(6, 'f'), 6],
    ['skip', 2, (r: ByteReader) => r.skip(3, 'f'), 3],
  ] as const)('%s with %i bytes left throws ParseError, not RangeError', (_kind, have, read, need) => {
    const r = new ByteReader(new Uint8Array(have + 10), 100)
    r.skip(10, 'prefix')
    const err = thrown(() => read(r))
    expect(err).toBeInstanceOf(ParseError)
    expect(err).toMatchObject({ code: 'ATTESTATION_TRUNCATED', field: 'f', offset: 110, need, have })
    expect(err.details).toEqual({ field: 'f', offset: 110, need, have })
  })

  it('sub readers report absolute offsets', () => {
    const r = new ByteReader(new Uint8Array(20))
    r.skip(4, 'a')
    const inner = r.sub(8, 'inner')
    inner.skip(6, 'b')
    expect(thrown(() => inner.u32('c'))).toMatchObject({ field: 'c', offset: 10, need: 4, have: 2 })
    expect(r.pos).toBe(12)
  })

  it('refuses a length that is not a safe non-negative integer', () => {
    const r = new ByteReader(new Uint8Array(4))
    expect(thrown(() => r.bytesView(-1, 'neg'))).toMatchObject({ code: 'ATTESTATION_TRUNCATED', field: 'neg' })
    expect(thrown(() => r.bytesView(2 ** 60, 'huge'))).toMatchObject({ code: 'ATTESTATION_TRUNCATED', field: 'huge' })
  })

  it('bytesCopy does not alias the input', () => {
    const src = Uint8Array.from([1, 2, 3])
    const copy = new ByteReader(src).bytesCopy(3, 'x')
    src[0] = 9
    expect(copy[0]).toBe(1)
  })
})

describe('readLayout', () => {
  const LAYOUT = [
    { field: 'a', offset: 0, size: 2, kind: 'u16' },
    { field: 'b', offset: 4, size: 3, kind: 'bytes' },
  ] as const

  it('reads each field at its offset', () => {
    const out = readLayout(new ByteReader(Uint8Array.from([1, 2, 0, 0, 7, 8, 9])), LAYOUT)
    expect(out).toEqual({ a: 0x0201, b: Uint8Array.from([7, 8, 9]) })
  })

  it.each([
    [1, 'a', 0, 1],
    [5, 'b', 4, 1],
    [3, 'b', 4, 0],
  ])('cut to %i bytes: %s at offset %i (have %i)', (n, field, offset, have) => {
    const err = thrown(() => readLayout(new ByteReader(new Uint8Array(n)), LAYOUT))
    expect(err).toMatchObject({ code: 'ATTESTATION_TRUNCATED', field, offset, have })
  })
})

describe('ByteReader.seek', () => {
  it('moves within bounds and refuses to pass the end', () => {
    const r = new ByteReader(new Uint8Array(8), 16)
    expect(r.seek(6, 'x').u16('y')).toBe(0)
    expect(thrown(() => r.seek(9, 'far'))).toMatchObject({ code: 'ATTESTATION_TRUNCATED', field: 'far', offset: 16, need: 9, have: 8 })
  })
})
