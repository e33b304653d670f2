// Kubernetes manifest → the same manifest with each confidential pod template carrying
// its initdata annotation. The mesh settings come from Contrast's pod-template
// annotations and are judged by the config component's parser; the mesh section is
// then written in the config file format and parsed back, so what is measured is
// exactly what the daemon will accept.

import { parseAllDocuments, type Document } from 'yaml'
import {
  ConfigError,
  INITDATA_ANNOTATION,
  MESH_INITDATA_KEY,
  digestForField,
  encodeInitdataAnnotation,
  initdataDigest,
  initdataFromAnnotation,
  meshConfigFromStrings,
  parseInitdataToml,
  parseMeshSection,
  renderInitdataToml,
  renderMeshSection,
  type ConfigIssue,
  type CoordinatorPin,
  type InitdataAlgorithm,
  type StringInputs,
} from '../config/index.js'
import { PolicyError } from './errors.js'
import { mergeMeshRules } from './merge.js'
import { FORBIDDEN_CAPABILITIES, PRIVILEGED_CAPABILITIES } from './rules-data.js'

/** Contrast's pod-template annotations, and the config input each one is. */
export const MESH_ANNOTATIONS = {
  ingress: 'contrast.edgeless.systems/servicemesh-ingress',
  egress: 'contrast.edgeless.systems/servicemesh-egress',
  adminPort: 'contrast.edgeless.systems/servicemesh-admin-interface-port',
} as const

/** Only pods of this runtime class (a prefix: Contrast rewrites it to `contrast-cc-<platform>-<hash>`) run our guest image. */
export const RUNTIME_CLASS_PREFIX = 'contrast-cc'

/** Where each kind keeps its pod template. */
const TEMPLATE_PATH: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
}

export interface ResourceRef {
  readonly kind: string
  readonly name: string
  readonly namespace?: string
  /** 0-based position in the multi-document stream. */
  readonly document: number
}

export interface InitdataResult {
  readonly resource: ResourceRef
  readonly algorithm: InitdataAlgorithm
  /** Hex of the raw digest: Contrast's policy hash for the coordinator manifest. */
  readonly digest: string
  readonly snpHostData: string
  readonly tdxMrConfigId: string
  /** The exact TOML that was encoded into the annotation. */
  readonly toml: string
  /** Whether a policy.rego is included and the mesh rules are in it. */
  readonly policy: 'none' | 'merged'
  readonly warnings: readonly string[]
}

export interface SkippedResource {
  readonly resource: ResourceRef
  readonly reason: string
}

export interface ManifestOptions {
  readonly coordinator: CoordinatorPin
  /** For new documents; an existing annotation keeps its algorithm unless this is set explicitly. */
  readonly algorithm?: InitdataAlgorithm
  /** policy.rego to include (replacing one already in the annotation); the mesh rules are merged into it. */
  readonly policy?: string
  /** The mesh rules' text (tests); default policy/podvm-mesh.rego. */
  readonly rules?: string
}

export interface ManifestResult {
  readonly manifest: string
  readonly results: readonly InitdataResult[]
  readonly skipped: readonly SkippedResource[]
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)

export function refText(r: ResourceRef): string {
  return `${r.kind}/${r.namespace !== undefined ? `${r.namespace}/` : ''}${r.name}`
}

function at(obj: unknown, path: readonly string[]): unknown {
  let v = obj
  for (const k of path) v = isObj(v) ? v[k] : undefined
  return v
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex')
}

function capName(c: unknown): string {
  const s = String(c).toUpperCase()
  return s.startsWith('CAP_') ? s : `CAP_${s}`
}

/**
 * What the Rego rules would deny, found before the pod is scheduled: privileged, the
 * forbidden capabilities, host network. Issues are errors; warnings are for CAP_NET_RAW,
 * which containerd grants by default unless the container drops it.
 */
export function podSpecIssues(spec: unknown): { issues: ConfigIssue[]; warnings: string[] } {
  const issues: ConfigIssue[] = []
  const warnings: string[] = []
  if (!isObj(spec)) return { issues, warnings }
  if (spec['hostNetwork'] === true) {
    issues.push({ source: 'spec.hostNetwork', entry: 'true', reason: 'INVALID_VALUE', message: 'the mesh cannot protect a pod on the host network' })
  }
  const lists: [string, unknown][] = [
    ['initContainers', spec['initContainers']],
    ['containers', spec['containers']],
  ]
  const forbidden = new Set<string>([...FORBIDDEN_CAPABILITIES, ...PRIVILEGED_CAPABILITIES])
  for (const [list, containers] of lists) {
    if (!Array.isArray(containers)) continue
    containers.forEach((c: unknown, i) => {
      const name = isObj(c) && typeof c['name'] === 'string' ? c['name'] : String(i)
      const source = `spec.${list}[${name}].securityContext`
      const sc = at(c, ['securityContext'])
      if (isObj(sc) && sc['privileged'] === true) {
        issues.push({ source: `${source}.privileged`, entry: 'true', index: i, reason: 'INVALID_VALUE', message: `container "${name}" is privileged` })
      }
      const add = at(sc, ['capabilities', 'add'])
      if (Array.isArray(add)) {
        for (const cap of add) {
          if (forbidden.has(capName(cap))) {
            issues.push({ source: `${source}.capabilities.add`, entry: String(cap), index: i, reason: 'INVALID_VALUE', message: `container "${name}" may not add ${capName(cap)}` })
          }
        }
      }
      const drop = at(sc, ['capabilities', 'drop'])
      const dropped = Array.isArray(drop) ? drop.map(capName) : []
      if (!dropped.includes('CAP_ALL') && !dropped.includes('CAP_NET_RAW')) {
        warnings.push(`container "${name}" does not drop NET_RAW (granted by containerd by default); the mesh policy rule denies it`)
      }
    })
  }
  return { issues, warnings }
}

function resourceInvalid(ref: ResourceRef, issues: readonly ConfigIssue[], cause?: unknown): PolicyError {
  const lines = issues.map((i) => `  ${i.source}${i.index !== undefined ? ` [${i.index}]` : ''}${i.entry !== undefined ? ` ${JSON.stringify(i.entry)}` : ''}: ${i.reason}: ${i.message}`)
  return new PolicyError('POLICY_RESOURCE_INVALID', [`${refText(ref)}: invalid mesh settings`, ...lines].join('\n'), { resource: ref, issues }, cause === undefined ? undefined : { cause })
}

function meshInputs(annotations: Obj, issues: ConfigIssue[]): StringInputs {
  const inputs: Record<string, { value: string; source: string }> = {}
  for (const [key, name] of Object.entries(MESH_ANNOTATIONS)) {
    const v = annotations[name]
    if (v !== undefined && v !== null) inputs[key] = { value: String(v), source: name }
  }
  // The daemon reads an empty egress value as "no egress", as Contrast's sidecar does;
  // an empty egress *annotation* is refused by `contrast generate`, and so here.
  if (inputs['egress'] !== undefined && inputs['egress'].value.trim() === '') {
    issues.push({
      source: MESH_ANNOTATIONS.egress,
      entry: inputs['egress'].value,
      reason: 'EMPTY_VALUE',
      message: 'egress annotation is empty (contrast generate refuses it too); remove it for no egress',
    })
  }
  return inputs
}

/** Adds or updates the initdata annotation of every `contrast-cc` pod template in `text`. */
export function addInitdataToManifest(text: string, options: ManifestOptions): ManifestResult {
  const docs = parseAllDocuments(text) as Document.Parsed[] | { errors: unknown[] }
  if (!Array.isArray(docs)) {
    throw new PolicyError('POLICY_MANIFEST_SYNTAX', 'the manifest is not YAML', { document: 0 })
  }
  const results: InitdataResult[] = []
  const skipped: SkippedResource[] = []
  docs.forEach((doc, index) => {
    const first = doc.errors[0]
    if (first !== undefined) {
      throw new PolicyError('POLICY_MANIFEST_SYNTAX', `document ${index}: ${first.message.split('\n')[0] ?? ''}`, {
        document: index,
        line: first.linePos?.[0]?.line,
      })
    }
    const obj: unknown = doc.toJS()
    if (!isObj(obj)) return
    const kind = typeof obj['kind'] === 'string' ? obj['kind'] : '(no kind)'
    const meta = at(obj, ['metadata'])
    const ns = at(meta, ['namespace'])
    const ref: ResourceRef = {
      kind,
      name: typeof at(meta, ['name']) === 'string' ? (at(meta, ['name']) as string) : '(unnamed)',
      ...(typeof ns === 'string' ? { namespace: ns } : {}),
      document: index,
    }
    if (kind === 'List' && Array.isArray(obj['items'])) {
      skipped.push({ resource: ref, reason: 'kind List is not expanded; list each resource as its own document' })
      return
    }
    const templatePath = TEMPLATE_PATH[kind]
    if (templatePath === undefined) return
    const template = templatePath.length === 0 ? obj : at(obj, templatePath)
    const spec = at(template, ['spec'])
    const runtimeClass = at(spec, ['runtimeClassName'])
    if (typeof runtimeClass !== 'string' || !runtimeClass.startsWith(RUNTIME_CLASS_PREFIX)) {
      skipped.push({ resource: ref, reason: `runtimeClassName ${JSON.stringify(runtimeClass ?? null)} does not start with "${RUNTIME_CLASS_PREFIX}"` })
      return
    }
    results.push(processTemplate(doc, ref, [...templatePath, 'metadata', 'annotations'], template, options))
  })
  return { manifest: docs.map((d) => d.toString({ lineWidth: 0 })).join(''), results, skipped }
}

function processTemplate(doc: Document.Parsed, ref: ResourceRef, annotationsPath: string[], template: unknown, options: ManifestOptions): InitdataResult {
  const rawAnnotations = at(template, ['metadata', 'annotations'])
  const annotations: Obj = isObj(rawAnnotations) ? rawAnnotations : {}
  const warnings: string[] = []

  // Mesh config: the config component judges the annotations, with their names as sources.
  const issues: ConfigIssue[] = []
  let section: string | undefined
  try {
    const config = meshConfigFromStrings(meshInputs(annotations, issues))
    section = renderMeshSection({ config, coordinator: options.coordinator })
    parseMeshSection(section) // the measured text must be what the daemon accepts
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    issues.push(...err.issues)
  }
  const podCheck = podSpecIssues(at(template, ['spec']))
  issues.push(...podCheck.issues)
  warnings.push(...podCheck.warnings)
  if (issues.length > 0 || section === undefined) throw resourceInvalid(ref, issues)

  // Existing initdata: keep its other [data] entries and its algorithm.
  let data: Record<string, string> = {}
  let algorithm: InitdataAlgorithm = options.algorithm ?? 'sha256'
  const existing = annotations[INITDATA_ANNOTATION]
  if (existing !== undefined && existing !== null) {
    try {
      const doc = initdataFromAnnotation(String(existing))
      data = { ...doc.data }
      if (options.algorithm === undefined) algorithm = doc.algorithm
    } catch (err) {
      throw new PolicyError('POLICY_INITDATA_INVALID', `${refText(ref)}: ${INITDATA_ANNOTATION} cannot be read: ${err instanceof Error ? err.message : String(err)}`, { resource: ref }, { cause: err })
    }
  }
  if (options.policy !== undefined) data['policy.rego'] = options.policy
  let policy: InitdataResult['policy'] = 'none'
  const rego = data['policy.rego']
  if (rego !== undefined) {
    const merged = mergeMeshRules(rego, options.rules !== undefined ? { rules: options.rules } : {})
    data['policy.rego'] = merged.policy
    for (const m of merged.missing) warnings.push(`the policy has no ${m} rule; it stays denied`)
    policy = 'merged'
  } else {
    warnings.push('no policy.rego: the mesh policy rules are not enforced (pass --policy with the generated policy)')
  }
  data[MESH_INITDATA_KEY] = section

  const toml = renderInitdataToml(algorithm, data)
  const digest = initdataDigest(parseInitdataToml(toml))
  const value = encodeInitdataAnnotation(toml)
  // Set one key where a map exists, so the other annotations keep their formatting.
  if (isObj(rawAnnotations)) doc.setIn([...annotationsPath, INITDATA_ANNOTATION], value)
  else doc.setIn(annotationsPath, doc.createNode({ [INITDATA_ANNOTATION]: value }))
  return {
    resource: ref,
    algorithm,
    digest: hex(digest),
    snpHostData: hex(digestForField(digest, 'snp-host-data')),
    tdxMrConfigId: hex(digestForField(digest, 'tdx-mrconfigid')),
    toml,
    policy,
    warnings,
  }
}
