// Merges the mesh's Rego rules into a generated Kata agent policy (genpolicy output, or
// any policy in `package agent_policy`). Rego cannot add a condition to another
// module's complete rule, so the merge renames the generated heads of the requests the
// mesh guards (`CreateContainerRequest` → `podvm_mesh_upstream_CreateContainerRequest`)
// and appends rules that re-export them only when the mesh's checks pass. Text in, text
// out; the merged policy is what gets measured, so the result is deterministic.

import { readFileSync } from 'node:fs'
import { PolicyError } from './errors.js'
import { REPLACED_REQUESTS, renderMeshPolicyData, UPSTREAM_PREFIX, WRAPPED_REQUESTS, type MeshPolicyData, MESH_POLICY_DATA } from './rules-data.js'

/** Marks a merged policy; merging again returns the policy unchanged. */
export const MERGE_MARKER = '# ---- podvm-mesh rules (merged by podvm-mesh initdata) ----'

export const RULES_FILE_URL = new URL('../../policy/podvm-mesh.rego', import.meta.url)

export function readMeshRules(): string {
  try {
    return readFileSync(RULES_FILE_URL, 'utf8')
  } catch (err) {
    throw new PolicyError('POLICY_RULES_INVALID', `cannot read the mesh rules at ${RULES_FILE_URL.pathname}`, { path: RULES_FILE_URL.pathname }, { cause: err })
  }
}

const UPSTREAM_EMPTY_HOOK_PATH = /^([ \t]*)count\(input\.guest_hook_path\) == 0[ \t]*$/gm
const PACKAGE = /^package\s+agent_policy\s*(#.*)?$/m
const IMPORT = /^import\s+\S+.*$/

export interface MergeResult {
  readonly policy: string
  /** false when the policy already carried the mesh rules. */
  readonly merged: boolean
  /** Wrapped requests the generated policy had no rule for (they stay denied). */
  readonly missing: readonly string[]
}

/** Splits a Rego module into its import lines and the rest after package + imports. */
function splitRules(rules: string): { imports: string[]; body: string } {
  const lines = rules.split('\n')
  const pkg = lines.findIndex((l) => PACKAGE.test(l))
  if (pkg < 0) throw new PolicyError('POLICY_RULES_INVALID', 'the mesh rules are not in package agent_policy', {})
  let end = pkg + 1
  const imports: string[] = []
  for (let i = pkg + 1; i < lines.length; i++) {
    const l = (lines[i] as string).trim()
    if (IMPORT.test(l)) {
      imports.push(l)
      end = i + 1
    } else if (l !== '' && !l.startsWith('#')) break
  }
  return { imports, body: lines.slice(end).join('\n').replace(/^\n+/, '') }
}

export function mergeMeshRules(generated: string, options: { rules?: string; data?: MeshPolicyData } = {}): MergeResult {
  if (!PACKAGE.test(generated)) {
    throw new PolicyError('POLICY_NOT_AGENT_POLICY', 'the policy does not declare "package agent_policy"', {})
  }
  if (generated.includes(MERGE_MARKER)) return { policy: generated, merged: false, missing: [] }
  const { imports, body } = splitRules(options.rules ?? readMeshRules())

  let policy = generated
  const missing: string[] = []
  for (const name of [...WRAPPED_REQUESTS, ...REPLACED_REQUESTS]) {
    // Rule heads start a line; `default X`, `X :=`, `X if`, `X {`, `X =` all match.
    const head = new RegExp(`^(default\\s+)?${name}(?![A-Za-z0-9_])`, 'gm')
    let found = false
    policy = policy.replace(head, (_m, def: string | undefined) => {
      found = true
      return `${def ?? ''}${UPSTREAM_PREFIX}${name}`
    })
    if (!found && (WRAPPED_REQUESTS as readonly string[]).includes(name)) missing.push(name)
  }

  // genpolicy's CreateSandboxRequest demands an empty hook path, which would deny the
  // path the mesh requires; that one condition becomes "exactly the image's directory".
  // The rest of the generated rule (kernel modules, sandbox pid namespace, storages) stays.
  policy = policy.replace(UPSTREAM_EMPTY_HOOK_PATH, (_m, indent: string) => `${indent}input.guest_hook_path == podvm_mesh_data.guest_hook_path`)

  // Imports must precede rules: add the ones the rules need after the policy's own.
  const lines = policy.split('\n')
  const have = new Set(lines.map((l) => l.trim()).filter((l) => IMPORT.test(l)))
  const add = imports.filter((i) => !have.has(i))
  if (add.length > 0) {
    let at = lines.findIndex((l) => PACKAGE.test(l)) + 1
    for (let i = at; i < lines.length; i++) {
      const l = (lines[i] as string).trim()
      if (IMPORT.test(l)) at = i + 1
      else if (l !== '' && !l.startsWith('#')) break
    }
    lines.splice(at, 0, ...add)
  }
  const defaults = missing.map((n) => `default ${UPSTREAM_PREFIX}${n} := false`)
  const tail = [MERGE_MARKER, ...defaults, '', body.trimEnd(), '', renderMeshPolicyData(options.data ?? MESH_POLICY_DATA)]
  const head = lines.join('\n').trimEnd()
  return { policy: `${head}\n\n${tail.join('\n')}`, merged: true, missing }
}
