// The data the mesh's Rego rules (policy/podvm-mesh.rego) read, as one value. Rules as
// data: the Rego file says how to judge a request, this says against what, and the
// generator and its tests check pod specs against the same lists before a pod is ever
// scheduled.

/** Workload containers may not hold these: they could rewrite or bypass the mesh's nftables rules and routes. */
export const FORBIDDEN_CAPABILITIES = ['CAP_NET_ADMIN', 'CAP_NET_RAW'] as const

/**
 * The OCI spec has no "privileged" flag; a privileged container is recognised by what
 * privileged grants: CAP_SYS_ADMIN (and a writable /sys, checked in Rego).
 */
export const PRIVILEGED_CAPABILITIES = ['CAP_SYS_ADMIN'] as const

/** OCI `Process.Capabilities` sets, by their proto field names. */
export const CAPABILITY_SETS = ['Ambient', 'Bounding', 'Effective', 'Inheritable', 'Permitted'] as const

/**
 * Guest paths holding the measured configuration or the mesh's state. The host may not
 * CopyFile into them, mount them into a container, or put a storage on them.
 */
export const PROTECTED_PATHS = [
  // kata-agent writes initdata.toml, aa.toml, cdh.toml (and reads policy.rego) here.
  '/run/confidential-containers/initdata',
  // Contrast's initdata-processor output; peer-pod images' copy of initdata and policy.
  '/run/measured-cfg',
  '/run/peerpod',
  // The daemon's runtime state and its configuration in the image.
  '/run/podvm-mesh',
  '/etc/podvm-mesh',
] as const

/** `.` or `..` segments, or `//`: such a path could name a protected path in disguise. */
export const UNNORMALIZED_PATH_REGEX = '(^|/)\\.\\.?(/|$)|//'

/** CRI's annotation that marks the pause container. */
export const CONTAINER_TYPE_ANNOTATION = 'io.kubernetes.cri.container-type'
export const SANDBOX_CONTAINER_TYPE = 'sandbox'

/**
 * The guest image's OCI hook directory (guest-image/tree/usr/share/oci/hooks). CreateSandbox
 * must name exactly this one: with an empty path the agent runs no hook and containers
 * would start without the mesh's certificates or its fail-closed check.
 */
export const GUEST_HOOK_PATH = '/usr/share/oci/hooks'

/** Requests the mesh rules wrap (the generated rule still decides; ours can only deny). */
export const WRAPPED_REQUESTS = ['CreateContainerRequest', 'CopyFileRequest', 'CreateSandboxRequest'] as const
/** Requests the mesh rules decide alone (always denied). */
export const REPLACED_REQUESTS = ['SetPolicyRequest'] as const

/** Prefix under which the merge keeps the generated policy's own rule for a wrapped request. */
export const UPSTREAM_PREFIX = 'podvm_mesh_upstream_'

export interface MeshPolicyData {
  readonly forbidden_capabilities: readonly string[]
  readonly privileged_capabilities: readonly string[]
  readonly capability_sets: readonly string[]
  readonly protected_paths: readonly string[]
  readonly unnormalized_path_regex: string
  readonly container_type_annotation: string
  readonly sandbox_container_type: string
  readonly guest_hook_path: string
}

export const MESH_POLICY_DATA: MeshPolicyData = Object.freeze({
  forbidden_capabilities: FORBIDDEN_CAPABILITIES,
  privileged_capabilities: PRIVILEGED_CAPABILITIES,
  capability_sets: CAPABILITY_SETS,
  protected_paths: PROTECTED_PATHS,
  unnormalized_path_regex: UNNORMALIZED_PATH_REGEX,
  container_type_annotation: CONTAINER_TYPE_ANNOTATION,
  sandbox_container_type: SANDBOX_CONTAINER_TYPE,
  guest_hook_path: GUEST_HOOK_PATH,
})

/** `podvm_mesh_data := {...}`: a Rego rule whose value is the JSON of the data (JSON is valid Rego). */
export function renderMeshPolicyData(data: MeshPolicyData = MESH_POLICY_DATA): string {
  return `podvm_mesh_data := ${JSON.stringify(data, null, 2)}\n`
}
