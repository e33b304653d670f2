import { MeshError } from '../../errors.js'

export type ProviderCode =
  /** The caller passed something unusable (report data not 64 bytes, empty key…). */
  | 'PROVIDER_BAD_INPUT'
  /** The caller's AbortSignal fired. */
  | 'PROVIDER_ABORTED'
  /** configfs-tsm: a file operation failed; details name the attribute and errno. */
  | 'PROVIDER_TSM_IO'
  /** configfs-tsm: the `provider` attribute names a TEE we do not handle. */
  | 'PROVIDER_TSM_UNSUPPORTED'
  /** configfs-tsm: `generation` moved under us on every attempt (another writer raced). */
  | 'PROVIDER_TSM_RACE'
  /** configfs-tsm: outblob/auxblob/generation content is not what the kernel documents. */
  | 'PROVIDER_TSM_MALFORMED'
  /** attestation-agent: the ttrpc call failed; cause is the TtrpcError. */
  | 'PROVIDER_AA_CALL'
  /** attestation-agent: the evidence JSON is not a shape we understand; details name the field. */
  | 'PROVIDER_AA_EVIDENCE'
  /** Auto-selection found no usable provider (or refused the simulation). */
  | 'PROVIDER_NONE'

export class ProviderError extends MeshError<ProviderCode> {}
