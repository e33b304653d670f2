export { PkiError } from './errors.js'
export type { PkiCode } from './errors.js'
export {
  DEFAULT_TLS_DIR,
  TLS_FILES,
  checkTlsMaterial,
  readTlsDir,
  splitPemCertificates,
  watchTlsDir,
  writeFileAtomic,
  writeTlsDir,
} from './store.js'
export type { TlsDirWatcher, TlsMaterial, TlsMaterialInfo } from './store.js'
export { MESH_STATUS_FILE, meshStatusPath, meshStatusWriter, parseMeshStatus, readMeshStatusSync, renderMeshStatus } from './mesh-status.js'
export type { MeshStatus, MeshStatusWriter } from './mesh-status.js'
export { createAuthority, createMeshAuthority, generateKeyPair, issueLeaf, sanEntries, toNodeCertificate } from './certificates.js'
export type { Authority, AuthorityOptions, Curve, IssuedLeaf, KeyPairPem, LeafOptions } from './certificates.js'
