import { MeshError } from '../errors.js'

export type PkiCode =
  | 'PKI_MISSING_FILE'
  | 'PKI_BAD_PEM'
  | 'PKI_KEY_MISMATCH'
  | 'PKI_CHAIN_UNTRUSTED'
  /** The mesh status file (mesh-status.ts) holds something else than one status line. */
  | 'PKI_BAD_STATUS'

export class PkiError extends MeshError<PkiCode> {}
