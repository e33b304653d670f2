# Kata agent policy rules the in-VM mesh relies on. Not a policy by itself: merged
# into a genpolicy-generated policy by `podvm-mesh initdata --policy` (policy/README.md
# says how and what each rule prevents). Evaluated only by kata-agent (regorus).
# The data these rules read, `podvm_mesh_data`, is emitted by src/policy/rules-data.ts
# and appended by the merge.
package agent_policy

import future.keywords.every
import future.keywords.if
import future.keywords.in

# --- wrapped requests: the generated rule still decides, the mesh rule can only deny ---

default CreateContainerRequest := false

CreateContainerRequest := result if {
	podvm_mesh_container_allowed
	result := podvm_mesh_upstream_CreateContainerRequest
}

default CopyFileRequest := false

CopyFileRequest := result if {
	not podvm_mesh_protected_path(input.path)
	result := podvm_mesh_upstream_CopyFileRequest
}

# The host must name exactly the image's hook directory: the hook there puts the mesh
# certificates into every container and stops containers of a pod whose mesh failed,
# so skipping it (an empty path) or pointing elsewhere is denied. The merge turned
# genpolicy's "empty path" condition into the same equality; its other conditions
# (no kernel modules, no sandbox pid namespace, allowed storages) still decide.
default CreateSandboxRequest := false

CreateSandboxRequest := result if {
	input.guest_hook_path == podvm_mesh_data.guest_hook_path
	count(input.kernel_modules) == 0
	result := podvm_mesh_upstream_CreateSandboxRequest
}

# The measured policy is the only policy: a host-supplied replacement would drop these
# rules. The generated SetPolicyRequest, if any, is renamed away by the merge.
default SetPolicyRequest := false

# --- CreateContainer ------------------------------------------------------------------

podvm_mesh_container_allowed if {
	not podvm_mesh_host_network
	not podvm_mesh_workload_privileged
	not podvm_mesh_workload_forbidden_capability
	not podvm_mesh_protected_mount
	not podvm_mesh_protected_storage
	not podvm_mesh_spec_hooks
}

# A spec that carries hooks of its own makes kata-agent drop the guest hooks entirely
# (append_guest_hooks discards its merge), so the container would start without the
# mesh's hook; hooks from the host would also run as root in the guest.
podvm_mesh_spec_hooks if {
	input.OCI.Hooks != null
}

# The pause (sandbox) container only runs /pause (pinned by the generated policy) and
# gets containerd's default capability set, which includes CAP_NET_RAW.
podvm_mesh_workload if {
	input.OCI.Annotations[podvm_mesh_data.container_type_annotation] != podvm_mesh_data.sandbox_container_type
}

podvm_mesh_workload if {
	not input.OCI.Annotations[podvm_mesh_data.container_type_annotation]
}

# Every container must have its own network namespace entry; a container without one
# shares the network of whatever created it (hostNetwork), outside the mesh's rules.
podvm_mesh_host_network if {
	not podvm_mesh_has_network_namespace
}

podvm_mesh_has_network_namespace if {
	some ns in input.OCI.Linux.Namespaces
	ns.Type == "network"
}

# The OCI spec has no "privileged" bit; privileged shows as CAP_SYS_ADMIN and a
# writable /sys.
podvm_mesh_workload_privileged if {
	podvm_mesh_workload
	some set in podvm_mesh_data.capability_sets
	some cap in input.OCI.Process.Capabilities[set]
	podvm_mesh_cap_name(cap) in podvm_mesh_data.privileged_capabilities
}

podvm_mesh_workload_privileged if {
	podvm_mesh_workload
	some m in input.OCI.Mounts
	m.type == "sysfs"
	not "ro" in m.options
}

podvm_mesh_workload_forbidden_capability if {
	podvm_mesh_workload
	some set in podvm_mesh_data.capability_sets
	some cap in input.OCI.Process.Capabilities[set]
	podvm_mesh_cap_name(cap) in podvm_mesh_data.forbidden_capabilities
}

podvm_mesh_cap_name(cap) := name if {
	startswith(upper(cap), "CAP_")
	name := upper(cap)
}

podvm_mesh_cap_name(cap) := name if {
	not startswith(upper(cap), "CAP_")
	name := concat("", ["CAP_", upper(cap)])
}

podvm_mesh_protected_mount if {
	some m in input.OCI.Mounts
	podvm_mesh_protected_path(m.source)
}

podvm_mesh_protected_mount if {
	some m in input.OCI.Mounts
	podvm_mesh_protected_path(m.destination)
}

podvm_mesh_protected_storage if {
	some s in input.storages
	podvm_mesh_protected_path(s.mount_point)
}

# --- paths ------------------------------------------------------------------------------

podvm_mesh_protected_path(p) if {
	some prefix in podvm_mesh_data.protected_paths
	p == prefix
}

podvm_mesh_protected_path(p) if {
	some prefix in podvm_mesh_data.protected_paths
	startswith(p, concat("", [prefix, "/"]))
}

# A path that is not in normal form could name a protected path in disguise.
podvm_mesh_protected_path(p) if {
	regex.match(podvm_mesh_data.unnormalized_path_regex, p)
}
