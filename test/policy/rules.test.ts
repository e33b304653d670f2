// The Rego file is evaluated only by kata-agent; without a Rego engine here, these tests
// pin its structure and its contract with the data the generator emits.
import { readFileSync } from 'node:fs'
import { describe, it, expect } from 'vitest'
import { MESH_POLICY_DATA, readMeshRules, renderMeshPolicyData, REPLACED_REQUESTS, UPSTREAM_PREFIX, WRAPPED_REQUESTS } from '../../src/policy/index.js'

const rules = readMeshRules()
/** Code only: comments removed, so names mentioned in prose do not count. */
const code = rules
  .split('\n')
  .map((l) => l.replace(/#.*$/, ''))
  .join('\n')

/** Names of rules defined at column 0 (`name if`, `name :=`, `name(x) :=`, `default name :=`). */
function definedRules(text: string): Set<string> {
  const out = new Set<string>()
  for (const m of text.matchAll(/^(?:default\s+)?([A-Za-z_][A-Za-z0-9_]*)(?=\s*(?:\(|:=|=|if\b|\{))/gm)) out.add(m[1] as string)
  return out
}

describe('policy/podvm-mesh.rego', () => {
  it('is in package agent_policy and imports the keywords it uses', () => {
    expect(code).toMatch(/^package agent_policy$/m)
    for (const kw of ['if', 'in', 'every']) {
      if (new RegExp(`\\b${kw}\\b`).test(code.replace(/^import.*$/gm, ''))) expect(code).toMatch(new RegExp(`^import future\\.keywords\\.${kw}$`, 'm'))
    }
  })

  it('defines the wrapped requests with a false default, each delegating to the upstream rule', () => {
    for (const name of WRAPPED_REQUESTS) {
      expect(code).toMatch(new RegExp(`^default ${name} := false$`, 'm'))
      expect(code).toMatch(new RegExp(`^${name} := result if \\{[^}]*result := ${UPSTREAM_PREFIX}${name}\\n\\}`, 'm'))
    }
    for (const name of REPLACED_REQUESTS) {
      expect(code).toMatch(new RegExp(`^default ${name} := false$`, 'm'))
      expect(code).not.toMatch(new RegExp(`^${name} :=`, 'm'))
    }
  })

  it('defines every podvm_mesh_ rule it references (except the upstream ones the merge provides)', () => {
    const defined = definedRules(code)
    const used = new Set([...code.matchAll(/\b(podvm_mesh_[a-z_]+)\b/g)].map((m) => m[1] as string))
    const undefinedRefs = [...used].filter((n) => !defined.has(n) && !n.startsWith('podvm_mesh_upstream_') && n !== 'podvm_mesh_data')
    expect(undefinedRefs).toEqual([])
    for (const n of ['podvm_mesh_container_allowed', 'podvm_mesh_host_network', 'podvm_mesh_workload_privileged', 'podvm_mesh_workload_forbidden_capability', 'podvm_mesh_protected_path', 'podvm_mesh_protected_mount', 'podvm_mesh_protected_storage']) {
      expect(defined.has(n), n).toBe(true)
    }
  })

  it('reads only data keys the generator emits, and the generator emits no unused key', () => {
    const read = new Set([...code.matchAll(/podvm_mesh_data\.([a-z_]+)/g)].map((m) => m[1] as string))
    expect([...read].sort()).toEqual(Object.keys(MESH_POLICY_DATA).sort())
  })

  it('reads request fields by the proto names kata-agent passes', () => {
    for (const f of ['input.OCI.Hooks', 'input.guest_hook_path', 'input.kernel_modules', 'input.OCI.Process.Capabilities[set]', 'input.OCI.Linux.Namespaces', 'input.OCI.Mounts', 'input.OCI.Annotations', 'input.storages', 'input.path']) {
      expect(code).toContain(f)
    }
  })

  it('CreateSandbox: exactly the image hook directory and no kernel modules, then the generated rule', () => {
    expect(code).toMatch(/^CreateSandboxRequest := result if \{\n\tinput\.guest_hook_path == podvm_mesh_data\.guest_hook_path\n\tcount\(input\.kernel_modules\) == 0\n\tresult := podvm_mesh_upstream_CreateSandboxRequest\n\}/m)
    expect(MESH_POLICY_DATA.guest_hook_path).toBe('/usr/share/oci/hooks')
  })

  it('CreateContainer: a spec with hooks is denied (the agent would drop the guest hooks)', () => {
    expect(code).toMatch(/^podvm_mesh_container_allowed if \{[^}]*\n\tnot podvm_mesh_spec_hooks\n/m)
    expect(code).toMatch(/^podvm_mesh_spec_hooks if \{\n\tinput\.OCI\.Hooks != null\n\}/m)
  })

  it('has balanced braces, brackets and parentheses', () => {
    const stripped = code.replace(/"(?:[^"\\]|\\.)*"/g, '""')
    for (const [o, c] of [['{', '}'], ['[', ']'], ['(', ')']] as const) {
      expect(stripped.split(o).length, o).toBe(stripped.split(c).length)
    }
  })
})

describe('renderMeshPolicyData', () => {
  const text = renderMeshPolicyData()

  it('is a Rego rule whose value is the JSON of the data', () => {
    expect(text.startsWith('podvm_mesh_data := ')).toBe(true)
    expect(JSON.parse(text.slice('podvm_mesh_data := '.length))).toEqual(MESH_POLICY_DATA)
  })

  it('lists what the issue requires', () => {
    expect(MESH_POLICY_DATA.forbidden_capabilities).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW'])
    expect(MESH_POLICY_DATA.privileged_capabilities).toContain('CAP_SYS_ADMIN')
    expect(MESH_POLICY_DATA.capability_sets).toEqual(['Ambient', 'Bounding', 'Effective', 'Inheritable', 'Permitted'])
    expect(MESH_POLICY_DATA.protected_paths).toContain('/run/confidential-containers/initdata')
    expect(MESH_POLICY_DATA.protected_paths).toContain('/run/podvm-mesh')
  })

  it('the path regex flags paths that are not in normal form, and only those', () => {
    const re = new RegExp(MESH_POLICY_DATA.unnormalized_path_regex)
    for (const p of ['/run/./podvm-mesh', '/run/x/../podvm-mesh', '//run/podvm-mesh', '/run/podvm-mesh/..', '..']) expect(re.test(p), p).toBe(true)
    for (const p of ['/run/kata-containers/shared/containers/abc-resolv.conf', 'proc', '/run/a.b/..c', '/run/.hidden']) expect(re.test(p), p).toBe(false)
  })

  it('the README documents every rule and every data key', () => {
    const readme = readFileSync(new URL('../../policy/README.md', import.meta.url), 'utf8')
    for (const name of [...WRAPPED_REQUESTS, ...REPLACED_REQUESTS, ...Object.keys(MESH_POLICY_DATA)]) expect(readme, name).toContain(name)
  })
})
