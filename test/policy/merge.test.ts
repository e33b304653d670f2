import { readFileSync } from 'node:fs'
import { describe, it, expect } from 'vitest'
import { MERGE_MARKER, mergeMeshRules, renderMeshPolicyData } from '../../src/policy/index.js'
import { thrown } from '../support.js'

const generated = readFileSync(new URL('fixtures/generated-policy.rego', import.meta.url), 'utf8')
const lines = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l))

describe('mergeMeshRules', () => {
  const { policy, merged, missing } = mergeMeshRules(generated)

  it('renames the generated heads of guarded requests, and nothing else', () => {
    expect(merged).toBe(true)
    expect(missing).toEqual([])
    expect(policy).toContain('default podvm_mesh_upstream_CreateContainerRequest := {"ops": [], "allowed": false}')
    expect(policy).toContain('podvm_mesh_upstream_CreateContainerRequest := {"ops": ops, "allowed": true} {')
    expect(policy).toContain('default podvm_mesh_upstream_CopyFileRequest := false')
    expect(policy).toContain('podvm_mesh_upstream_CopyFileRequest {')
    expect(policy).toContain('default podvm_mesh_upstream_SetPolicyRequest := true')
    expect(policy).toContain('default StartContainerRequest := true')
    // The data key of the generated policy mentions CopyFileRequest mid-line: untouched.
    expect(policy).toContain('"request_defaults": {"CopyFileRequest"')
  })

  it('leaves exactly one default per guarded request: the mesh one, false', () => {
    for (const name of ['CreateContainerRequest', 'CopyFileRequest', 'CreateSandboxRequest', 'SetPolicyRequest']) {
      expect(lines(policy, new RegExp(`^default ${name} `))).toEqual([`default ${name} := false`])
    }
    expect(lines(policy, /^SetPolicyRequest\b/)).toEqual([])
  })

  it('puts the needed imports in the import block once, before any rule', () => {
    const all = lines(policy, /^import /)
    expect(all).toEqual(['import future.keywords.in', 'import future.keywords.every', 'import input', 'import future.keywords.if'])
    const lastImport = policy.lastIndexOf('\nimport ')
    expect(lastImport).toBeLessThan(policy.indexOf('\ndefault '))
    expect(lines(policy, /^package /)).toEqual(['package agent_policy'])
  })

  it('appends the rules after the marker, then the data', () => {
    const at = policy.indexOf(MERGE_MARKER)
    expect(at).toBeGreaterThan(policy.indexOf('policy_data := {'))
    expect(policy.slice(at)).toContain('podvm_mesh_container_allowed if {')
    expect(policy.endsWith(renderMeshPolicyData())).toBe(true)
  })

  it('merging a merged policy returns it unchanged', () => {
    expect(mergeMeshRules(policy)).toEqual({ policy, merged: false, missing: [] })
  })

  it('a policy without a wrapped rule gets a false upstream default, reported as missing', () => {
    const minimal = 'package agent_policy\n\ndefault StartContainerRequest := true\n'
    const r = mergeMeshRules(minimal)
    expect(r.missing).toEqual(['CreateContainerRequest', 'CopyFileRequest', 'CreateSandboxRequest'])
    expect(r.policy).toContain('default podvm_mesh_upstream_CreateContainerRequest := false')
    expect(lines(r.policy, /^import /)).toEqual(['import future.keywords.every', 'import future.keywords.if', 'import future.keywords.in'])
    expect(r.policy.indexOf('import future')).toBeGreaterThan(r.policy.indexOf('package agent_policy'))
  })

  it("turns genpolicy's empty-hook-path condition into the image's hook directory, and keeps the rest of its rule", () => {
    expect(policy).not.toMatch(/count\(input\.guest_hook_path\) == 0/)
    expect(policy).toContain('podvm_mesh_upstream_CreateSandboxRequest {\n\tprint("CreateSandboxRequest: input.guest_hook_path =", input.guest_hook_path)\n\tinput.guest_hook_path == podvm_mesh_data.guest_hook_path\n\tcount(input.kernel_modules) == 0\n\tinput.sandbox_pidns == false\n}')
    expect(policy).toContain('"guest_hook_path": "/usr/share/oci/hooks"')
  })

  it('does not rename rules whose names only start like a guarded request', () => {
    const r = mergeMeshRules('package agent_policy\nCreateContainerRequestHelper := 1\n')
    expect(r.policy).toContain('\nCreateContainerRequestHelper := 1')
  })

  it('refuses a module that is not the agent policy', () => {
    expect(thrown(() => mergeMeshRules('package other\n')).code).toBe('POLICY_NOT_AGENT_POLICY')
  })

  it('refuses rules that are not in package agent_policy', () => {
    expect(thrown(() => mergeMeshRules(generated, { rules: 'package x\n' })).code).toBe('POLICY_RULES_INVALID')
  })
})
