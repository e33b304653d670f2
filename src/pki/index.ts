// The PKI every process needs: the certificate directory (Contrast's layout), checks of
// TLS material, key pairs.
export { PkiError } from './errors.js'
export type { PkiCode } from './errors.js'
export {
  DEFAULT_TLS_DIR,
  TLS_FILES,
  checkTlsMaterial,
  checkedTlsInfo,
  readTlsDir,
  splitPemCertificates,
  watchTlsDir,
  writeTlsDir,
} from './store.js'
export { writeFileAtomic } from './atomic-file.js'
export type { TlsDirWatcher, TlsMaterial, TlsMaterialInfo } from './store.js'
export { MESH_STATUS_FILE, meshStatusPath, meshStatusWriter, parseMeshStatus, readMeshStatusSync, renderMeshStatus } from './mesh-status.js'
export type { MeshStatus, MeshStatusWriter } from './mesh-status.js'
export { generateKeyPair } from './keys.js'
export type { Curve, KeyPairPem } from './keys.js'
// Building certificates (CAs, leaves) is './issuing.js': it loads @peculiar/x509, which
// only the coordinator, the demo and tests need.
