// Kubernetes manifest → the same manifest with each confidential pod template carrying
// its initdata annotation. The mesh settings come from Contrast's pod-template
// annotations and are judged by the config component's parser; the mesh section is
// then written in the config file format and parsed back, so what is measured is
// exactly what the daemon will accept.

import { parseAllDocuments, type Document } from 'yaml'
import {
  isConfigError,
  INITDATA_ANNOTATION,
  MESH_INITDATA_KEY,
  digestForField,
  encodeInitdataAnnotation,
  initdataDigest,
  initdataFromAnnotation,
  meshConfigFromStrings,
  parseBoolean,
  parseInitdataToml,
  parseMeshSection,
  renderInitdataToml,
  renderMeshSection,
  type ConfigIssue,
  type CoordinatorPin,
  type InitdataAlgorithm,
  type MeshConfig,
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

/** Ours: pod-template annotations for what Contrast's language cannot say. */
export const OWN_ANNOTATIONS = {
  /** `true`: the pod does its own TLS on every port (ingress not redirected); Go booleans. */
  ownTls: 'podvm-mesh/own-tls',
  /** Comma-separated egress entry names checked against the mesh CA only (no secure naming). */
  egressMeshCaOnly: 'podvm-mesh/egress-mesh-ca-only',
} as const

/** Contrast's workload secret id annotation; absent, Contrast derives `<group|core>/<version>/<kind>/<namespace>/<name>`. */
export const WORKLOAD_SECRET_ID_ANNOTATION = 'contrast.edgeless.systems/workload-secret-id'
const POD_ROLE_ANNOTATION = 'contrast.edgeless.systems/pod-role'

/** The containers `contrast generate` injects; their job is done by the guest daemon. */
export const CONTRAST_INJECTED = { initializer: 'contrast-initializer', serviceMesh: 'contrast-service-mesh' } as const
/** Env of Contrast's injected service-mesh container that carries the mesh config (the CLI copies the annotations there). */
const SIDECAR_ENV: Readonly<Record<string, keyof typeof MESH_ANNOTATIONS>> = {
  CONTRAST_INGRESS_PROXY_CONFIG: 'ingress',
  CONTRAST_EGRESS_PROXY_CONFIG: 'egress',
  CONTRAST_ADMIN_PORT: 'adminPort',
  EDG_INGRESS_PROXY_CONFIG: 'ingress',
  EDG_EGRESS_PROXY_CONFIG: 'egress',
  EDG_ADMIN_PORT: 'adminPort',
}

/** Cluster DNS suffix Kubernetes uses by default. */
const CLUSTER_DOMAIN = 'cluster.local'

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

/** What the mesh does with one port of a pod, for the operator to check. */
export interface PortPlan {
  readonly port: number
  /** Where the port was found: container ports, Services, ingress entries, the admin port. */
  readonly seen: readonly string[]
  readonly treatment: 'mtls' | 'tls' | 'plaintext'
  readonly text: string
}

export interface InitdataResult {
  readonly resource: ResourceRef
  /** The names the pod's mesh certificate must carry: the workload's name (Contrast's default), then each selecting Service's names. */
  readonly sans: readonly string[]
  /** The Services whose selector matches the pod template, `name.namespace`. */
  readonly services: readonly string[]
  readonly workloadSecretId: string
  /** Contrast's injected containers that were removed (a `contrast generate` manifest). */
  readonly converted: readonly string[]
  /** Every port the pod is known to serve, and what the mesh does on it. */
  readonly ports: readonly PortPlan[]
  /** One line per egress entry. */
  readonly egress: readonly string[]
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
  /** For resources without metadata.namespace (SANs, workload secret id); default `default`. */
  readonly namespace?: string
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
  })
  const defaultNamespace = options.namespace ?? 'default'
  const services = servicesOf(docs.map((d) => d.toJS() as unknown), defaultNamespace)
  docs.forEach((doc, index) => {
    const obj: unknown = doc.toJS()
    if (!isObj(obj)) return
    const kind = typeof obj['kind'] === 'string' ? obj['kind'] : '(no kind)'
    const meta = at(obj, ['metadata'])
    const ns = at(meta, ['namespace'])
    const ref: ResourceRef = {
      kind,
      name: typeof at(meta, ['name']) === 'string' ? (at(meta, ['name']) as string) : '(unnamed)',
      namespace: typeof ns === 'string' ? ns : undefined,
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
    results.push(processTemplate(doc, ref, { obj, templatePath, template, services, namespace: typeof ns === 'string' ? ns : defaultNamespace }, options))
  })
  return { manifest: docs.map((d) => d.toString({ lineWidth: 0 })).join(''), results, skipped }
}

interface Service {
  readonly name: string
  readonly namespace: string
  readonly selector: Readonly<Record<string, string>>
  readonly ports: readonly { readonly port: number; readonly targetPort: number | string | undefined; readonly name: string | undefined }[]
}

/** Every Service of the manifest with a non-empty selector (a Service without one selects no pod). */
function servicesOf(objs: readonly unknown[], defaultNamespace: string): Service[] {
  const out: Service[] = []
  for (const o of objs) {
    if (!isObj(o) || o['kind'] !== 'Service') continue
    const name = at(o, ['metadata', 'name'])
    const ns = at(o, ['metadata', 'namespace'])
    const selector = at(o, ['spec', 'selector'])
    if (typeof name !== 'string' || !isObj(selector) || Object.keys(selector).length === 0) continue
    const ports = at(o, ['spec', 'ports'])
    out.push({
      name,
      namespace: typeof ns === 'string' ? ns : defaultNamespace,
      selector: Object.fromEntries(Object.entries(selector).map(([k, v]) => [k, String(v)])),
      ports: (Array.isArray(ports) ? ports : []).filter(isObj).map((p) => ({
        port: Number(p['port']),
        targetPort: typeof p['targetPort'] === 'number' || typeof p['targetPort'] === 'string' ? p['targetPort'] : undefined,
        name: typeof p['name'] === 'string' ? p['name'] : undefined,
      })),
    })
  }
  return out
}

/** The names a client may dial to reach a Service: short, namespaced, and fully qualified. */
export function serviceNames(name: string, namespace: string): string[] {
  return [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.${CLUSTER_DOMAIN}`]
}

/** Contrast's default workload secret id: `<group|core>/<version>/<kind>/<namespace>/<name>`. */
function defaultWorkloadSecretId(obj: unknown, kind: string, name: string, namespace: string): string {
  const apiVersion = at(obj, ['apiVersion'])
  const [group, version] = typeof apiVersion === 'string' && apiVersion.includes('/') ? apiVersion.split('/', 2) : ['core', typeof apiVersion === 'string' ? apiVersion : 'v1']
  return `${group}/${version}/${kind}/${namespace}/${name}`
}

interface TemplateContext {
  readonly obj: unknown
  readonly templatePath: readonly string[]
  readonly template: unknown
  readonly services: readonly Service[]
  readonly namespace: string
}

/**
 * A `contrast generate` manifest carries Contrast's initializer and service-mesh
 * sidecar (privileged, CAP_NET_ADMIN). The daemon in the guest does both jobs, so they
 * are removed; the sidecar's mesh env (which the CLI copied from the annotations) is
 * carried over as the mesh config's input.
 */
function convertContrastGenerated(doc: Document.Parsed, ctx: TemplateContext, issues: ConfigIssue[]): { removed: string[]; env: Record<string, { value: string; source: string }> } {
  const specPath = [...ctx.templatePath, 'spec']
  const inits = at(ctx.template, ['spec', 'initContainers'])
  const removed: string[] = []
  const env: Record<string, { value: string; source: string }> = {}
  if (!Array.isArray(inits)) return { removed, env }
  const injected = new Set<string>(Object.values(CONTRAST_INJECTED))
  // From the end, so earlier indexes stay valid while deleting.
  for (let i = inits.length - 1; i >= 0; i--) {
    const c: unknown = inits[i]
    const name = at(c, ['name'])
    if (typeof name !== 'string' || !injected.has(name)) continue
    if (name === CONTRAST_INJECTED.serviceMesh) {
      const vars = at(c, ['env'])
      for (const v of Array.isArray(vars) ? vars : []) {
        const key = at(v, ['name'])
        const value = at(v, ['value'])
        if (typeof key !== 'string' || !(key in SIDECAR_ENV)) continue
        const input = SIDECAR_ENV[key] as string
        const source = `spec.initContainers[${name}].env.${key}`
        if (typeof value !== 'string') {
          issues.push({ source, reason: 'WRONG_TYPE', message: `${key} must be a literal value (valueFrom is not measured)` })
          continue
        }
        const prior = env[input]
        if (prior !== undefined && prior.value !== value) {
          issues.push({ source, entry: value, reason: 'ENV_CONFLICT', message: `${key} differs from ${prior.source}` })
          continue
        }
        env[input] = { value, source }
      }
    }
    doc.deleteIn([...specPath, 'initContainers', i])
    removed.push(name)
  }
  if (removed.length === inits.length) doc.deleteIn([...specPath, 'initContainers'])
  return { removed: removed.reverse(), env }
}

/** Go's strconv.ParseBool, as for Contrast's flags. */
function parseGoBool(value: string): boolean | undefined {
  return parseBoolean(value, { source: '' }, [])
}

function portNumber(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535 ? v : undefined
}

/** Every port the pod serves that the manifest names, and what the mesh does with it. */
function portPlan(spec: unknown, services: readonly Service[], config: MeshConfig): PortPlan[] {
  const seen = new Map<number, string[]>()
  const note = (port: number | undefined, what: string) => {
    if (port === undefined) return
    seen.set(port, [...(seen.get(port) ?? []), what])
  }
  const namedPorts = new Map<string, number>()
  for (const list of ['containers', 'initContainers']) {
    const cs = at(spec, [list])
    for (const c of Array.isArray(cs) ? cs : []) {
      const ports = at(c, ['ports'])
      for (const p of Array.isArray(ports) ? ports : []) {
        const n = portNumber(at(p, ['containerPort']))
        const protocol = at(p, ['protocol'])
        if (n === undefined || (typeof protocol === 'string' && protocol !== 'TCP')) continue
        const pname = at(p, ['name'])
        if (typeof pname === 'string') namedPorts.set(pname, n)
        note(n, `container ${String(at(c, ['name']))}${typeof pname === 'string' ? ` port ${pname}` : ''}`)
      }
    }
  }
  for (const s of services) {
    for (const p of s.ports) {
      const target = typeof p.targetPort === 'string' ? namedPorts.get(p.targetPort) : (portNumber(p.targetPort) ?? portNumber(p.port))
      note(target, `Service ${s.name}:${p.port}`)
    }
  }
  for (const r of config.ingress.rules) note(r.port, `ingress entry ${JSON.stringify(r.name)}`)
  if (config.admin.exposed) note(config.admin.port, 'admin port')
  return [...seen.entries()]
    .sort(([a], [b]) => a - b)
    .map(([port, where]) => {
      const rule = config.ingress.rules.find((r) => r.port === port)
      const treatment: PortPlan['treatment'] = !config.ingress.enabled || rule?.mode === 'passthrough' ? 'plaintext' : rule?.mode === 'tls' ? 'tls' : 'mtls'
      const text = !config.ingress.enabled
        ? 'not redirected: plaintext reaches the app (its own TLS, if any)'
        : treatment === 'plaintext'
          ? 'not redirected (#true): plaintext reaches the app'
          : treatment === 'tls'
            ? 'TLS terminated by the mesh, no client certificate (#false)'
            : 'mTLS: TLS terminated by the mesh, client certificate from the mesh CA required'
      return { port, seen: [...new Set(where)], treatment, text }
    })
}

function egressPlan(config: MeshConfig): string[] {
  return config.egress.map((e) => {
    const remote = `${e.remote.host.includes(':') ? `[${e.remote.host}]` : e.remote.host}${e.remote.absolute === true ? '.' : ''}:${e.remote.port}`
    return `${e.listen.address}:${e.listen.port} -> ${remote}: mTLS, ${e.meshCaOnly === true ? 'any mesh member (meshCaOnly: no name check)' : `the server's certificate must name ${e.remote.host}`}`
  })
}

function processTemplate(doc: Document.Parsed, ref: ResourceRef, ctx: TemplateContext, options: ManifestOptions): InitdataResult {
  const { template } = ctx
  const annotationsPath = [...ctx.templatePath, 'metadata', 'annotations']
  const rawAnnotations = at(template, ['metadata', 'annotations'])
  const annotations: Obj = isObj(rawAnnotations) ? rawAnnotations : {}
  const warnings: string[] = []
  const issues: ConfigIssue[] = []

  // A `contrast generate` manifest: its injected containers go, their mesh env stays.
  const converted = convertContrastGenerated(doc, ctx, issues)
  const inputs = { ...meshInputs(annotations, issues) } as Record<string, { value: string; source: string }>
  for (const [key, fromEnv] of Object.entries(converted.env)) {
    const fromAnnotation = inputs[key]
    // The CLI copies an annotation into the sidecar's env; if they disagree, the env is what Contrast measured.
    if (fromAnnotation !== undefined && fromAnnotation.value !== fromEnv.value) {
      issues.push({ source: fromEnv.source, entry: fromEnv.value, reason: 'ENV_CONFLICT', message: `differs from the annotation ${fromAnnotation.source}` })
    }
    inputs[key] = fromEnv
  }

  // Pods that do their own TLS: one annotation; Contrast's coordinator is one of them.
  let ownTls = false
  const ownTlsValue = annotations[OWN_ANNOTATIONS.ownTls]
  if (ownTlsValue !== undefined && ownTlsValue !== null) {
    const b = parseGoBool(String(ownTlsValue))
    if (b === undefined) issues.push({ source: OWN_ANNOTATIONS.ownTls, entry: String(ownTlsValue), reason: 'INVALID_BOOLEAN', message: `"${String(ownTlsValue)}" is not a boolean` })
    else ownTls = b
  } else if (annotations[POD_ROLE_ANNOTATION] === 'coordinator') {
    ownTls = true
    warnings.push(`${POD_ROLE_ANNOTATION}: coordinator does its own (attested) TLS: ingress is not redirected`)
  }
  if (ownTls) {
    if (inputs['ingress'] !== undefined && inputs['ingress'].value.trim() !== 'DISABLED') {
      issues.push({
        source: OWN_ANNOTATIONS.ownTls,
        entry: String(ownTlsValue ?? 'coordinator'),
        reason: 'INVALID_VALUE',
        message: `the pod does its own TLS, so its ingress is not redirected; remove ${inputs['ingress'].source}`,
      })
    }
    inputs['ingress'] = { value: 'DISABLED', source: OWN_ANNOTATIONS.ownTls }
  }
  const caOnly = annotations[OWN_ANNOTATIONS.egressMeshCaOnly]
  if (caOnly !== undefined && caOnly !== null) inputs['egressMeshCaOnly'] = { value: String(caOnly), source: OWN_ANNOTATIONS.egressMeshCaOnly }

  // Names: the workload (Contrast's default first SAN, so its CN), then every Service that selects the pod.
  const labels = at(template, ['metadata', 'labels'])
  const selecting = ctx.services.filter(
    (s) => s.namespace === ctx.namespace && isObj(labels) && Object.entries(s.selector).every(([k, v]) => String(labels[k]) === v),
  )
  const sans = [...new Set([ref.name, ...selecting.flatMap((s) => serviceNames(s.name, s.namespace))])]
  const secretId = annotations[WORKLOAD_SECRET_ID_ANNOTATION]
  const workloadSecretId =
    typeof secretId === 'string' && secretId !== '' ? secretId : defaultWorkloadSecretId(ctx.obj, ref.kind, ref.name, ctx.namespace)
  // Mesh config: the config component judges the inputs, with their names as sources.
  let section: string | undefined
  let config: MeshConfig | undefined
  try {
    config = meshConfigFromStrings(inputs as StringInputs)
    section = renderMeshSection({ config, coordinator: options.coordinator, workload: { sans, workloadSecretId } })
    parseMeshSection(section) // the measured text must be what the daemon accepts
  } catch (err) {
    if (!isConfigError(err)) throw err
    issues.push(...err.issues)
  }
  const podCheck = podSpecIssues(at(doc.toJS(), [...ctx.templatePath, 'spec']))
  issues.push(...podCheck.issues)
  warnings.push(...podCheck.warnings)
  if (issues.length > 0 || section === undefined || config === undefined) throw resourceInvalid(ref, issues)
  for (const e of config.egress) {
    if (e.meshCaOnly === true) warnings.push(`egress "${e.name}" accepts any mesh member for ${e.remote.host} (${OWN_ANNOTATIONS.egressMeshCaOnly})`)
  }

  const ports = portPlan(at(template, ['spec']), selecting, config)
  const egress = egressPlan(config)

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
    const merged = mergeMeshRules(rego, { rules: options.rules })
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
    sans,
    services: selecting.map((s) => `${s.name}.${s.namespace}`),
    workloadSecretId,
    converted: converted.removed,
    ports,
    egress,
    algorithm,
    digest: hex(digest),
    snpHostData: hex(digestForField(digest, 'snp-host-data')),
    tdxMrConfigId: hex(digestForField(digest, 'tdx-mrconfigid')),
    toml,
    policy,
    warnings,
  }
}
