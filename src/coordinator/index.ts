// Public surface of the coordinator component: the only import target for other components.

export { CoordinatorError, type CoordinatorCode } from './errors.js'
export { parseManifest, lookupPolicy, ManifestSchema, type Manifest, type ManifestInput, type ManifestIssue, type Policy } from './manifest.js'
export { CoordinatorCa, DEFAULT_LEAF_LIFETIME_MS, MESH_CN, ROOT_CN, backdateMs, type IssuedMeshCert, type MeshCaGeneration } from './ca.js'
export { loadState, saveState, STATE_FILE, type CoordinatorState } from './state.js'
export { checkEvidence, evidenceToWire, wireToEvidence, type CheckedEvidence, type EvidenceCheckOptions } from './evidence-check.js'
export { MeshApi, manifestUpdateMessage, peerAddress, DEFAULT_NONCE_TTL_MS, NONCE_BYTES, type MeshApiOptions } from './mesh-api.js'
export {
  MESH_API_PROTO,
  REASON_METADATA_KEY,
  meshApiType,
  type ChallengeRequest,
  type ChallengeResponse,
  type NewMeshCertRequest,
  type NewMeshCertResponse,
  type SetManifestRequest,
  type SetManifestResponse,
  type WireEvidence,
} from './mesh-api-proto.js'
export { connectMeshApi, DEFAULT_CALL_TIMEOUT_MS, type CallOpts, type MeshApiConnection } from './client.js'
export { startCoordinator, MESH_API_PORT, type CoordinatorOptions, type RunningCoordinator } from './server.js'
export { evidenceProvider, type EvidenceKind } from './evidence-provider.js'
