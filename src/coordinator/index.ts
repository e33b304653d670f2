// Public surface of the coordinator component (the server side of the mesh API, whose
// protocol and client live in meshapi/): the only import target for other components.

export { CoordinatorError, type CoordinatorCode } from './errors.js'
export { parseManifest, lookupPolicy, ManifestSchema, type Manifest, type ManifestInput, type ManifestIssue, type Policy } from './manifest.js'
export { CoordinatorCa, DEFAULT_LEAF_LIFETIME_MS, MESH_CN, ROOT_CN, backdateMs, type IssuedMeshCert, type MeshCaGeneration } from './ca.js'
export { loadState, saveState, STATE_FILE, LEGACY_STATE_FILE, type CoordinatorState } from './state.js'
export {
  chooseSealer,
  keyFileSealer,
  simulatedSealer,
  snpDerivedKeyRequest,
  snpDerivedKeySealer,
  SIMULATED_KEY_FILE,
  type SealerKind,
  type StateSealer,
} from './state-sealing.js'
export { MeshApi, manifestHashOf, manifestUpdateMessage, peerAddress, DEFAULT_NONCE_TTL_MS, NONCE_BYTES, type MeshApiOptions } from './mesh-api.js'
export { startCoordinator, MAX_REQUEST_BYTES, MAX_STREAMS_PER_CONNECTION, MESH_API_PORT, type CoordinatorOptions, type RunningCoordinator } from './server.js'
