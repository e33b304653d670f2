// The coordinator manifest's policies for the pods `initdata` just measured: each pod's
// policy hash (its initdata digest, as SNP HOST_DATA reports it; Contrast keys TDX the
// same way, by MRCONFIGID's first 32 bytes) → the names its certificate carries and its
// workload secret id. Applied to an existing manifest, a workload's older policy (same
// workload secret id, another hash) is replaced, everything else is kept.

import { parseManifest } from '../coordinator/manifest.js'
import { PolicyError } from './errors.js'
import { refText, type InitdataResult } from './manifest.js'

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

export interface PolicyUpdate {
  /** The manifest's JSON text, 2-space indented, newline-terminated. */
  readonly text: string
  /** Keys that were removed because the same workload now has another hash. */
  readonly replaced: readonly string[]
}

/** `existing`: the manifest's current text, or undefined to start a new one (policies only). */
export function updateCoordinatorPolicies(existing: string | undefined, results: readonly InitdataResult[], source = 'coordinator manifest'): PolicyUpdate {
  let doc: Obj = {}
  if (existing !== undefined) {
    try {
      const parsed: unknown = JSON.parse(existing)
      if (!isObj(parsed)) throw new Error('not a JSON object')
      doc = parsed
    } catch (err) {
      throw new PolicyError('POLICY_COORDINATOR_MANIFEST', `${source}: ${err instanceof Error ? err.message : String(err)}`, { source }, { cause: err })
    }
  }
  const policies: Obj = isObj(doc['policies']) ? { ...doc['policies'] } : {}
  const replaced: string[] = []
  const mine = new Map<string, InitdataResult>()
  for (const r of results) {
    // Measured identities make this impossible unless two documents describe the same workload.
    const other = mine.get(r.snpHostData)
    if (other !== undefined && JSON.stringify(other.sans) !== JSON.stringify(r.sans)) {
      throw new PolicyError('POLICY_COORDINATOR_MANIFEST', `${source}: ${refText(other.resource)} and ${refText(r.resource)} have the same policy hash but different names`, { source })
    }
    mine.set(r.snpHostData, r)
    for (const [key, p] of Object.entries(policies)) {
      if (key !== r.snpHostData && isObj(p) && p['workloadSecretId'] === r.workloadSecretId) {
        delete policies[key]
        replaced.push(key)
      }
    }
    const prior = policies[r.snpHostData]
    policies[r.snpHostData] = {
      ...(isObj(prior) ? prior : {}),
      sans: [...r.sans],
      workloadSecretId: r.workloadSecretId,
    }
  }
  const text = `${JSON.stringify({ ...doc, policies }, null, 2)}\n`
  try {
    parseManifest(text, source) // what is written is what the coordinator accepts
  } catch (err) {
    throw new PolicyError('POLICY_COORDINATOR_MANIFEST', `${source}: ${err instanceof Error ? err.message : String(err)}`, { source }, { cause: err })
  }
  return { text, replaced }
}
