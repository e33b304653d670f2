import { MeshError } from '../errors.js'

export type CoordinatorCode =
  /** The manifest file is not JSON or does not match the schema. */
  | 'COORDINATOR_MANIFEST_INVALID'
  /** The state directory holds something we cannot read back. */
  | 'COORDINATOR_STATE_INVALID'
  /** A request field is missing or unusable. */
  | 'COORDINATOR_BAD_REQUEST'
  /** The nonce was never issued by this coordinator (or it restarted since). */
  | 'COORDINATOR_NONCE_UNKNOWN'
  | 'COORDINATOR_NONCE_EXPIRED'
  /** The nonce was already consumed by an earlier request. */
  | 'COORDINATOR_NONCE_REPLAYED'
  /** The evidence failed a verifier check (details.reasons lists them). */
  | 'COORDINATOR_EVIDENCE_REJECTED'
  /** Simulated evidence while the manifest does not accept it. */
  | 'COORDINATOR_SIMULATED_REFUSED'
  /** The evidence's REPORT_DATA is not SHA-512(public key ‖ nonce). */
  | 'COORDINATOR_BINDING_MISMATCH'
  /**
   * The request presents the coordinator's own TLS key, or evidence of a coordinator
   * policy: Challenge answers would otherwise serve as evidence for NewMeshCert.
   */
  | 'COORDINATOR_KEY_REFUSED'
  /**
   * Evidence of a TEE type (snp, tdx) the manifest has no reference values for: no
   * launch measurement could be checked, so none is admitted.
   */
  | 'COORDINATOR_TEE_NOT_ADMITTED'
  /** The evidence verified but matches no reference value of the manifest. */
  | 'COORDINATOR_REFERENCE_MISMATCH'
  /** No manifest policy for the evidence's HOSTDATA / MRCONFIGID. */
  | 'COORDINATOR_POLICY_NOT_FOUND'
  /** SetManifest with no update key configured, or a bad signature. */
  | 'COORDINATOR_UPDATE_UNAUTHENTICATED'
  /** Too many outstanding challenges. */
  | 'COORDINATOR_BUSY'
  /** Our own evidence could not be produced. */
  | 'COORDINATOR_EVIDENCE_UNAVAILABLE'
  /** Guest side: the coordinator failed verification or answered inconsistently. */
  | 'COORDINATOR_UNTRUSTED'
  /** Guest side: the call did not complete (unreachable, timeout, gRPC status). */
  | 'COORDINATOR_UNREACHABLE'
  /** Guest side: the coordinator refused the request (status and reason in details). */
  | 'COORDINATOR_REFUSED'

export class CoordinatorError extends MeshError<CoordinatorCode> {}
