// The issuing side of the PKI: CAs and mesh leaves. Loads @peculiar/x509 and
// reflect-metadata, so only the coordinator, the demo and tests import it.
export { createAuthority, createMeshAuthority, issueLeaf, sanEntries, toNodeCertificate } from './certificates.js'
export type { Authority, AuthorityOptions, IssuedLeaf, LeafOptions, RawExtension } from './certificates.js'
