// One error shape for the whole daemon: a stable `code` (log field and metric
// label), structured `details`, and the foreign error kept as `cause`.
// The brand survives two copies of this module, so `isMeshError` works across them.

const BRAND = Symbol.for('podvm-mesh.MeshError')

export type Details = Readonly<Record<string, unknown>>

export class MeshError<C extends string = string> extends Error {
  readonly code: C
  readonly details: Details

  constructor(code: C, message: string, details: Details = {}, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = details
    Object.defineProperty(this, BRAND, { value: true })
  }

  override get name(): string {
    return this.constructor.name
  }

  toJSON(): { code: C; message: string; details: Details } {
    return { code: this.code, message: this.message, details: this.details }
  }
}

export function isMeshError(err: unknown): err is MeshError {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[BRAND] === true
}
