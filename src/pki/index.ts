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
export { createAuthority, createMeshAuthority, generateKeyPair, issueLeaf, sanEntries, toNodeCertificate } from './certificates.js'
export type { Authority, AuthorityOptions, Curve, IssuedLeaf, KeyPairPem, LeafOptions } from './certificates.js'
