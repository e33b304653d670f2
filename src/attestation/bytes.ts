// A bounds-checked cursor over attestation evidence. Every read first calls
// `need(n, field)`, so a short input fails with a ParseError naming the field,
// never with the DataView's RangeError.

import { ParseError } from './errors.js'

export class ByteReader {
  readonly bytes: Uint8Array
  /** Absolute offset of bytes[0] in the outermost buffer, for error reports. */
  readonly base: number
  #view: DataView
  #pos = 0

  constructor(bytes: Uint8Array, base = 0) {
    this.bytes = bytes
    this.base = base
    // A Node Buffer is a window into a shared slab: the view must start at its byteOffset.
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  /** Position relative to this reader's start. */
  get pos(): number {
    return this.#pos
  }

  /** Absolute position, as reported in errors. */
  get offset(): number {
    return this.base + this.#pos
  }

  get remaining(): number {
    return this.bytes.byteLength - this.#pos
  }

  need(n: number, field: string): void {
    if (!Number.isSafeInteger(n) || n < 0 || n > this.remaining) {
      throw new ParseError(field, this.offset, n, this.remaining)
    }
  }

  /** Moves to a position relative to this reader's start (may not pass the end). */
  seek(pos: number, field: string): this {
    if (!Number.isSafeInteger(pos) || pos < 0 || pos > this.bytes.byteLength) {
      // Reported as "need `pos` bytes from this reader's start, have its length".
      throw new ParseError(field, this.base, pos, this.bytes.byteLength)
    }
    this.#pos = pos
    return this
  }

  skip(n: number, field: string): this {
    this.need(n, field)
    this.#pos += n
    return this
  }

  u8(field: string): number {
    this.need(1, field)
    return this.#view.getUint8(this.#pos++)
  }

  u16(field: string): number {
    this.need(2, field)
    const v = this.#view.getUint16(this.#pos, true)
    this.#pos += 2
    return v
  }

  u32(field: string): number {
    this.need(4, field)
    const v = this.#view.getUint32(this.#pos, true)
    this.#pos += 4
    return v
  }

  u64(field: string): bigint {
    this.need(8, field)
    const v = this.#view.getBigUint64(this.#pos, true)
    this.#pos += 8
    return v
  }

  /** A view (no copy) of the next n bytes; copy it if it must outlive the input. */
  bytesView(n: number, field: string): Uint8Array {
    this.need(n, field)
    const v = this.bytes.subarray(this.#pos, this.#pos + n)
    this.#pos += n
    return v
  }

  /** A copy of the next n bytes, safe to keep after the input buffer is reused. */
  bytesCopy(n: number, field: string): Uint8Array {
    return Uint8Array.from(this.bytesView(n, field))
  }

  /** A reader over the next n bytes, reporting absolute offsets. */
  sub(n: number, field: string): ByteReader {
    const start = this.offset
    return new ByteReader(this.bytesView(n, field), start)
  }
}

export type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 'bytes'

/** One row of a binary layout table: where a field sits and how to read it. */
export interface FieldSpec<N extends string = string, K extends FieldKind = FieldKind> {
  readonly field: N
  readonly offset: number
  readonly size: number
  readonly kind: K
}

type KindType<K extends FieldKind> = K extends 'u64' ? bigint : K extends 'bytes' ? Uint8Array : number

export type LayoutFields<L extends readonly FieldSpec[]> = {
  -readonly [E in L[number] as E['field']]: KindType<E['kind']>
}

const KIND_SIZE: Record<Exclude<FieldKind, 'bytes'>, number> = { u8: 1, u16: 2, u32: 4, u64: 8 }

/**
 * Reads every field of a layout table at its offset (relative to the reader's
 * start). Byte fields are copies, so the result does not pin the input buffer.
 */
export function readLayout<const L extends readonly FieldSpec[]>(r: ByteReader, layout: L): LayoutFields<L> {
  const out: Record<string, unknown> = Object.create(null)
  for (const spec of layout) {
    if (spec.kind !== 'bytes' && KIND_SIZE[spec.kind] !== spec.size) {
      throw new Error(`layout bug: ${spec.field} is ${spec.kind} but ${spec.size} B`)
    }
    if (spec.offset > r.bytes.byteLength) {
      throw new ParseError(spec.field, r.base + spec.offset, spec.size, 0)
    }
    r.seek(spec.offset, spec.field)
    switch (spec.kind) {
      case 'u8':
        out[spec.field] = r.u8(spec.field)
        break
      case 'u16':
        out[spec.field] = r.u16(spec.field)
        break
      case 'u32':
        out[spec.field] = r.u32(spec.field)
        break
      case 'u64':
        out[spec.field] = r.u64(spec.field)
        break
      case 'bytes':
        out[spec.field] = r.bytesCopy(spec.size, spec.field)
        break
    }
  }
  return out as LayoutFields<L>
}
