import { isMeshError, MeshError } from '../errors.js'

// The codes travel as the reason next to the gRPC status, so both ends and the logs
// keep the names they always had.
export type MeshApiCode =
  /** A request field is missing or unusable (evidence, address). */
  | 'COORDINATOR_BAD_REQUEST'
  /** The evidence failed a verifier check (details.reasons lists them). */
  | 'COORDINATOR_EVIDENCE_REJECTED'
  /** Simulated evidence where it is not accepted. */
  | 'COORDINATOR_SIMULATED_REFUSED'
  /** The evidence's REPORT_DATA is not SHA-512(public key ‖ nonce). */
  | 'COORDINATOR_BINDING_MISMATCH'
  /**
   * Evidence of a TEE type (snp, tdx) with no reference values to hold it against: no
   * launch measurement could be checked, so none is admitted.
   */
  | 'COORDINATOR_TEE_NOT_ADMITTED'
  /** The evidence verified but matches no reference value. */
  | 'COORDINATOR_REFERENCE_MISMATCH'
  /** The coordinator failed verification or answered inconsistently. */
  | 'COORDINATOR_UNTRUSTED'
  /** The call did not complete (unreachable, timeout, gRPC status). */
  | 'COORDINATOR_UNREACHABLE'
  /** The coordinator refused the request (status and reason in details). */
  | 'COORDINATOR_REFUSED'

const CODES: ReadonlySet<string> = new Set<MeshApiCode>([
  'COORDINATOR_BAD_REQUEST',
  'COORDINATOR_EVIDENCE_REJECTED',
  'COORDINATOR_SIMULATED_REFUSED',
  'COORDINATOR_BINDING_MISMATCH',
  'COORDINATOR_TEE_NOT_ADMITTED',
  'COORDINATOR_REFERENCE_MISMATCH',
  'COORDINATOR_UNTRUSTED',
  'COORDINATOR_UNREACHABLE',
  'COORDINATOR_REFUSED',
])

export class MeshApiError extends MeshError<MeshApiCode> {}

export function isMeshApiError(err: unknown): err is MeshApiError {
  return isMeshError(err) && CODES.has(err.code)
}
