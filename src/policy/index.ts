// policy: initdata generation from Kubernetes manifests, and the Kata agent policy
// rules the in-VM mesh relies on (their data and the merge into a generated policy).
export { addInitdataToManifest, podSpecIssues, refText, serviceNames, MESH_ANNOTATIONS, OWN_ANNOTATIONS, CONTRAST_INJECTED, WORKLOAD_SECRET_ID_ANNOTATION, RUNTIME_CLASS_PREFIX, type InitdataResult, type PortPlan, type ManifestOptions, type ManifestResult, type ResourceRef, type SkippedResource } from './manifest.js'
export { updateCoordinatorPolicies, type PolicyUpdate } from './coordinator-policies.js'
export { mergeMeshRules, readMeshRules, MERGE_MARKER, RULES_FILE_URL, type MergeResult } from './merge.js'
export {
  MESH_POLICY_DATA,
  renderMeshPolicyData,
  FORBIDDEN_CAPABILITIES,
  PRIVILEGED_CAPABILITIES,
  PROTECTED_PATHS,
  GUEST_HOOK_PATH,
  WRAPPED_REQUESTS,
  REPLACED_REQUESTS,
  UPSTREAM_PREFIX,
  type MeshPolicyData,
} from './rules-data.js'
export { PolicyError, type PolicyCode } from './errors.js'
