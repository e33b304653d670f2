import { MeshError } from '../errors.js'

// The server's own codes; evidence and client codes are the mesh API's (meshapi/errors.ts).
export type CoordinatorCode =
  /** The manifest file is not JSON or does not match the schema. */
  | 'COORDINATOR_MANIFEST_INVALID'
  /** The state directory holds something we cannot read back (or that fails authentication). */
  | 'COORDINATOR_STATE_INVALID'
  /** The TEE's sealing key for the state could not be obtained. */
  | 'COORDINATOR_SEALING_KEY_UNAVAILABLE'
  /** A request field is missing or unusable. */
  | 'COORDINATOR_BAD_REQUEST'
  /** The nonce was never issued by this coordinator (or it restarted since). */
  | 'COORDINATOR_NONCE_UNKNOWN'
  | 'COORDINATOR_NONCE_EXPIRED'
  /** The nonce was already consumed by an earlier request. */
  | 'COORDINATOR_NONCE_REPLAYED'
  /**
   * The request presents the coordinator's own TLS key, or evidence of a coordinator
   * policy: Challenge answers would otherwise serve as evidence for NewMeshCert.
   */
  | 'COORDINATOR_KEY_REFUSED'
  /** No manifest policy for the evidence's HOSTDATA / MRCONFIGID. */
  | 'COORDINATOR_POLICY_NOT_FOUND'
  /** SetManifest with no update key configured, or a bad signature. */
  | 'COORDINATOR_UPDATE_UNAUTHENTICATED'
  /** Too many outstanding challenges. */
  | 'COORDINATOR_BUSY'
  /** Our own evidence could not be produced. */
  | 'COORDINATOR_EVIDENCE_UNAVAILABLE'

export class CoordinatorError extends MeshError<CoordinatorCode> {}
