// The mesh API: what the coordinator and a pod say to each other. The wire protocol,
// evidence on the wire and its check, the pod's pin of the coordinator, the client.
// Both agent/ and coordinator/ use it; it uses neither.

export { MeshApiError, isMeshApiError, type MeshApiCode } from './errors.js'
export {
  MESH_API_PROTO,
  REASON_METADATA_KEY,
  meshApiService,
  meshApiType,
  type ChallengeRequest,
  type ChallengeResponse,
  type NewMeshCertRequest,
  type NewMeshCertResponse,
  type SetManifestRequest,
  type SetManifestResponse,
  type WireEvidence,
} from './proto.js'
export { checkEvidence, evidenceToWire, wireToEvidence, type CheckedEvidence, type EvidenceCheckOptions, type ReferenceValues } from './evidence.js'
export {
  checkMeshCertAnswer,
  requireMeasurementPin,
  verifyCoordinator,
  type ChallengeSeen,
  type CoordinatorPin,
  type VerifiedCoordinator,
} from './pin.js'
export { parseCoordinatorIdentity, type CoordinatorIdentity } from './identity.js'
export { connectMeshApi, DEFAULT_CALL_TIMEOUT_MS, type CallOpts, type MeshApiConnection } from './client.js'
