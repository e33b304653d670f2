import { MeshError } from '../errors.js'

export type PkiCode =
  | 'PKI_MISSING_FILE'
  | 'PKI_BAD_PEM'
  | 'PKI_KEY_MISMATCH'
  | 'PKI_CHAIN_UNTRUSTED'

export class PkiError extends MeshError<PkiCode> {}
