// Attestation errors that are thrown: input that cannot be parsed at all. A
// report that parses but fails a check is not an error; it is a `VerifyReason`
// in the verifier's result (see verifier.ts).

import { MeshError, type Details } from '../errors.js'

export type AttestationCode =
  /** The input ends before a field it must contain (a `ParseError`). */
  | 'ATTESTATION_TRUNCATED'
  /** A length, type or count field contradicts the structure around it. */
  | 'ATTESTATION_MALFORMED'
  /** A version or body type whose layout we do not know. */
  | 'ATTESTATION_UNSUPPORTED_VERSION'
  /** A caller-supplied input (certificate, hex, option) is unusable. */
  | 'ATTESTATION_BAD_INPUT'

export class AttestationError extends MeshError<AttestationCode> {}

/**
 * The input is shorter than a field. `offset` is absolute (from the start of
 * the outermost buffer), `need` the bytes the field wants, `have` what is left.
 */
export class ParseError extends AttestationError {
  readonly offset: number
  readonly field: string
  readonly need: number
  readonly have: number

  constructor(field: string, offset: number, need: number, have: number, extra: Details = {}) {
    super('ATTESTATION_TRUNCATED', `${field}: need ${need} B at offset ${offset}, have ${have} B`, {
      ...extra,
      field,
      offset,
      need,
      have,
    })
    this.field = field
    this.offset = offset
    this.need = need
    this.have = have
  }
}

export function malformed(field: string, message: string, details: Details = {}): AttestationError {
  return new AttestationError('ATTESTATION_MALFORMED', `${field}: ${message}`, { field, ...details })
}
