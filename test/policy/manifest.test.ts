import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { gunzipSync, gzipSync } from 'node:zlib'
import { describe, it, expect } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { INITDATA_ANNOTATION, parseMeshSection, parseInitdataToml, meshSectionFromInitdata, initdataFromAnnotation, type CoordinatorPin } from '../../src/config/index.js'
import { addInitdataToManifest, MERGE_MARKER, podSpecIssues } from '../../src/policy/index.js'
import { thrown } from '../support.js'

const fixture = (name: string) => readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8')
const ID = '5e'.repeat(32)
const coordinator: CoordinatorPin = parseMeshSection(`[coordinator]\naddress = "coordinator.contrast:1313"\nidentity = "${ID}"\n`).coordinator

function docsOf(text: string): any[] {
  return parseAllDocuments(text).map((d: any) => d.toJS())
}

/** The annotation decoded independently of the code under test. */
function decode(value: string): string {
  return gunzipSync(Buffer.from(value, 'base64')).toString('utf8')
}

describe('addInitdataToManifest', () => {
  const { manifest, results, skipped } = addInitdataToManifest(fixture('workloads.yaml'), { coordinator })
  const out = docsOf(manifest)

  it('touches only contrast-cc pod templates, in document order', () => {
    expect(results.map((r) => [r.resource.kind, r.resource.name, r.resource.document])).toEqual([
      ['Deployment', 'web', 0],
      ['Job', 'migrate', 2],
      ['StatefulSet', 'db', 4],
    ])
    expect(skipped).toEqual([{ resource: { kind: 'Pod', name: 'plain', document: 1 }, reason: expect.stringContaining('"runc"') }])
    expect(out[1].metadata.annotations).toBeUndefined()
    expect(out[3]).toEqual(docsOf(fixture('workloads.yaml'))[3])
  })

  it('puts the annotation on the pod template, next to the mesh annotations', () => {
    const ann = out[0].spec.template.metadata.annotations
    expect(Object.keys(ann)).toEqual([
      'contrast.edgeless.systems/servicemesh-ingress',
      'contrast.edgeless.systems/servicemesh-egress',
      'contrast.edgeless.systems/servicemesh-admin-interface-port',
      INITDATA_ANNOTATION,
    ])
    expect(out[0].metadata.annotations).toBeUndefined()
    // A Job template without annotations gets a map created.
    expect(Object.keys(out[2].spec.template.metadata.annotations)).toEqual([INITDATA_ANNOTATION])
  })

  it('keeps comments and the other documents as written', () => {
    expect(manifest).toContain('# keep this comment')
    expect(manifest).toContain('# A manifest as an operator writes it')
    expect(manifest.split('\n---\n')).toHaveLength(5)
  })

  it('the annotation decodes to an initdata document whose mesh section is the annotations, validated', () => {
    const toml = decode(out[0].spec.template.metadata.annotations[INITDATA_ANNOTATION])
    const section = meshSectionFromInitdata(parseInitdataToml(toml))
    expect(section.coordinator).toEqual(coordinator)
    expect(section.config.ingress.rules).toEqual([
      { name: 'public', port: 8443, mode: 'tls' },
      { name: 'metrics', port: 9090, mode: 'passthrough' },
    ])
    expect(section.config.egress).toEqual([{ name: 'db', listen: { address: '127.137.0.1', port: 5432 }, remote: { host: 'db-svc', port: 5432 } }])
    expect(section.config.admin).toEqual({ port: 9901, exposed: true })
    const db = meshSectionFromInitdata(parseInitdataToml(decode(out[4].spec.template.metadata.annotations[INITDATA_ANNOTATION])))
    expect(db.config.ingress.enabled).toBe(false)
    // No mesh annotations at all: the secure default (mTLS on every port) is measured.
    const job = meshSectionFromInitdata(parseInitdataToml(decode(out[2].spec.template.metadata.annotations[INITDATA_ANNOTATION])))
    expect(job.config.ingress).toEqual({ enabled: true, rules: [] })
  })

  it('reports the digest computed over the exact TOML in the annotation, and its SNP/TDX forms', () => {
    for (const [i, r] of [[0, results[0]], [2, results[1]], [4, results[2]]] as const) {
      const toml = decode(out[i].spec.template.metadata.annotations[INITDATA_ANNOTATION])
      const digest = createHash('sha256').update(toml, 'utf8').digest('hex')
      expect(r?.digest).toBe(digest)
      expect(r?.snpHostData).toBe(digest)
      expect(r?.tdxMrConfigId).toBe(digest + '00'.repeat(16))
      expect(r?.toml).toBe(toml)
    }
  })

  it('is deterministic and idempotent: running it on its own output changes nothing', () => {
    const again = addInitdataToManifest(manifest, { coordinator })
    expect(again.manifest).toBe(manifest)
    expect(again.results.map((r) => r.digest)).toEqual(results.map((r) => r.digest))
  })

  it('warns about a container that keeps NET_RAW and about a missing policy', () => {
    expect(results[2]?.warnings).toEqual(expect.arrayContaining([expect.stringContaining('"db" does not drop NET_RAW'), expect.stringContaining('no policy.rego')]))
    expect(results[0]?.warnings.some((w) => w.includes('NET_RAW'))).toBe(false)
  })
})

describe('merging with an existing annotation and a policy', () => {
  const policy = fixture('generated-policy.rego')

  it('keeps the other [data] entries and the algorithm, replaces the mesh section', () => {
    const existingToml = 'version = "0.1.0"\nalgorithm = "sha384"\n\n[data]\n"aa.toml" = "x = 1"\n"podvm-mesh.toml" = "stale"\n'
    const existing = gzipSync(existingToml).toString('base64')
    const text = fixture('workloads.yaml').replace('      annotations:\n        contrast.edgeless.systems/servicemesh-ingress: "metrics', `      annotations:\n        ${INITDATA_ANNOTATION}: ${existing}\n        contrast.edgeless.systems/servicemesh-ingress: "metrics`)
    const { results, manifest } = addInitdataToManifest(text, { coordinator })
    const doc = initdataFromAnnotation(docsOf(manifest)[0].spec.template.metadata.annotations[INITDATA_ANNOTATION])
    expect(doc.algorithm).toBe('sha384')
    expect(Object.keys(doc.data)).toEqual(['aa.toml', 'podvm-mesh.toml'])
    expect(doc.data['aa.toml']).toBe('x = 1')
    expect(results[0]?.digest).toHaveLength(96)
    expect(addInitdataToManifest(text, { coordinator, algorithm: 'sha512' }).results[0]?.algorithm).toBe('sha512')
  })

  it('includes --policy as policy.rego with the mesh rules merged in', () => {
    const { results } = addInitdataToManifest(fixture('workloads.yaml'), { coordinator, policy })
    const doc = parseInitdataToml(results[0]?.toml as string)
    expect(doc.data['policy.rego']).toContain(MERGE_MARKER)
    expect(doc.data['policy.rego']).toContain('podvm_mesh_upstream_CreateContainerRequest := {"ops": ops, "allowed": true}')
    expect(results[0]?.policy).toBe('merged')
    expect(results[0]?.warnings.some((w) => w.includes('policy'))).toBe(false)
  })

  it('an unreadable existing annotation fails naming the resource', () => {
    const text = `apiVersion: v1\nkind: Pod\nmetadata:\n  name: root\n  annotations:\n    ${INITDATA_ANNOTATION}: "not base64!"\nspec:\n  runtimeClassName: contrast-cc\n  containers: [{ name: r, image: x }]\n`
    const err = thrown(() => addInitdataToManifest(text, { coordinator }))
    expect(err).toMatchObject({ code: 'POLICY_INITDATA_INVALID', details: { resource: { kind: 'Pod', name: 'root', document: 0 } } })
    expect(err.cause.code).toBe('INITDATA_BAD_BASE64')
  })
})

describe('bad input', () => {
  it('bad annotations fail with the resource and each bad entry', () => {
    const err = thrown(() => addInitdataToManifest(fixture('bad-ingress.yaml'), { coordinator }))
    expect(err.code).toBe('POLICY_RESOURCE_INVALID')
    expect(err.details.resource).toEqual({ kind: 'DaemonSet', name: 'agent', namespace: 'ops', document: 1 })
    expect(err.details.issues.map((i: any) => [i.source, i.entry, i.reason])).toEqual([
      ['contrast.edgeless.systems/servicemesh-ingress', 'bad#99999#false', 'PORT_OUT_OF_RANGE'],
      ['contrast.edgeless.systems/servicemesh-egress', 'x#10.0.0.1:80#svc:80', 'LISTEN_NOT_LOCAL'],
    ])
    expect(err.message).toContain('DaemonSet/ops/agent')
  })

  it('privileged, forbidden capabilities and host network fail before the policy would deny them', () => {
    const err = thrown(() => addInitdataToManifest(fixture('privileged.yaml'), { coordinator }))
    expect(err.code).toBe('POLICY_RESOURCE_INVALID')
    expect(err.details.issues.map((i: any) => [i.source, i.entry])).toEqual([
      ['spec.hostNetwork', 'true'],
      ['spec.containers[r].securityContext.privileged', 'true'],
      ['spec.containers[r].securityContext.capabilities.add', 'NET_ADMIN'],
      ['spec.containers[r].securityContext.capabilities.add', 'CAP_SYS_ADMIN'],
    ])
  })

  it('podSpecIssues: NET_RAW added is an error, not only a warning', () => {
    const { issues } = podSpecIssues({ initContainers: [{ name: 'i', securityContext: { capabilities: { add: ['net_raw'] } } }] })
    expect(issues).toMatchObject([{ source: 'spec.initContainers[i].securityContext.capabilities.add', entry: 'net_raw' }])
  })

  it('YAML syntax errors name the document', () => {
    const err = thrown(() => addInitdataToManifest('kind: Pod\n---\nkind: [unclosed\n', { coordinator }))
    expect(err).toMatchObject({ code: 'POLICY_MANIFEST_SYNTAX', details: { document: 1 } })
  })
})

describe('Contrast manifests', () => {
  const emojivoto = readFileSync(new URL('../fixtures/emojivoto/emojivoto.yaml', import.meta.url), 'utf8')
  const generated = readFileSync(new URL('../fixtures/emojivoto/web-contrast-generate.yaml', import.meta.url), 'utf8')
  const pod = (annotations: Record<string, string>, extra = '') =>
    `apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: ${JSON.stringify(annotations)}\nspec:\n  runtimeClassName: contrast-cc\n${extra}  containers: [{ name: c, image: x, ports: [{ containerPort: 8200 }] }]\n`

  it('derives each workload names from the Services that select it, and measures them', () => {
    const { results } = addInitdataToManifest(emojivoto, { coordinator })
    const by = Object.fromEntries(results.map((r) => [r.resource.name, r]))
    expect(by['emoji']?.sans).toEqual(['emoji', 'emoji-svc', 'emoji-svc.default', 'emoji-svc.default.svc', 'emoji-svc.default.svc.cluster.local'])
    expect(by['web']?.services).toEqual(['web-svc.default'])
    expect(by['vote-bot']?.sans).toEqual(['vote-bot'])
    const section = parseMeshSection(parseInitdataToml(by['voting']?.toml as string).data['podvm-mesh.toml'] as string)
    expect(section.workload).toEqual({ sans: by['voting']?.sans, workloadSecretId: 'apps/v1/Deployment/default/voting' })
    expect(addInitdataToManifest(emojivoto, { coordinator, namespace: 'shop' }).results[0]?.sans).toContain('emoji-svc.shop.svc.cluster.local')
  })

  it('a Service in another namespace, or with another selector, names nothing', () => {
    const other = emojivoto.replace('name: emoji-svc\nspec:', 'name: emoji-svc\n  namespace: elsewhere\nspec:')
    expect(addInitdataToManifest(other, { coordinator }).results[0]?.sans).toEqual(['emoji'])
  })

  it('converts what contrast generate wrote: injected containers out, their mesh env in, workload-secret-id kept', () => {
    const { manifest, results } = addInitdataToManifest(generated, { coordinator })
    const spec = docsOf(manifest)[0].spec.template.spec
    expect(spec.initContainers).toBeUndefined()
    expect(spec.containers.map((c: any) => c.name)).toEqual(['web-svc'])
    expect(spec.volumes).toEqual([{ name: 'contrast-secrets', emptyDir: { medium: 'Memory' } }])
    expect(results[0]?.converted).toEqual(['contrast-initializer', 'contrast-service-mesh'])
    expect(results[0]?.workloadSecretId).toBe('emojivoto-web')
    const section = meshSectionFromInitdata(parseInitdataToml(results[0]?.toml as string))
    expect(section.config.ingress.rules).toEqual([{ name: 'web', port: 8080, mode: 'tls' }])
    expect(section.config.egress.map((e) => e.remote.host)).toEqual(['emoji-svc', 'voting-svc'])
  })

  it('refuses a generated manifest whose sidecar env contradicts its annotation', () => {
    const err = thrown(() => addInitdataToManifest(generated.replace('value: "web#8080#false"', 'value: "web#8080#true"'), { coordinator }))
    expect(err.details.issues).toMatchObject([{ source: 'spec.initContainers[contrast-service-mesh].env.CONTRAST_INGRESS_PROXY_CONFIG', reason: 'ENV_CONFLICT' }])
  })

  it('a pod that does its own TLS opts out with one annotation; the report says plaintext reaches it', () => {
    const r = addInitdataToManifest(pod({ 'podvm-mesh/own-tls': 'true' }), { coordinator }).results[0]
    expect(meshSectionFromInitdata(parseInitdataToml(r?.toml as string)).config.ingress.enabled).toBe(false)
    expect(r?.ports).toEqual([{ port: 8200, seen: ['container c'], treatment: 'plaintext', text: expect.stringContaining('its own TLS') }])
    const err = thrown(() => addInitdataToManifest(pod({ 'podvm-mesh/own-tls': 'true', 'contrast.edgeless.systems/servicemesh-ingress': 'a#8200#false' }), { coordinator }))
    expect(err.details.issues).toMatchObject([{ source: 'podvm-mesh/own-tls', reason: 'INVALID_VALUE' }])
    expect(thrown(() => addInitdataToManifest(pod({ 'podvm-mesh/own-tls': 'yes' }), { coordinator })).details.issues).toMatchObject([{ reason: 'INVALID_BOOLEAN' }])
    // Contrast's coordinator does its own attested TLS.
    const coord = addInitdataToManifest(pod({ 'contrast.edgeless.systems/pod-role': 'coordinator' }), { coordinator }).results[0]
    expect(coord?.ports[0]?.treatment).toBe('plaintext')
    expect(coord?.warnings.some((w) => w.includes('coordinator'))).toBe(true)
  })

  it('names the egress entries that accept any mesh member, and warns', () => {
    const r = addInitdataToManifest(
      pod({ 'contrast.edgeless.systems/servicemesh-egress': 'vault#127.0.0.1:8200#vault:8200', 'podvm-mesh/egress-mesh-ca-only': 'vault' }),
      { coordinator },
    ).results[0]
    expect(meshSectionFromInitdata(parseInitdataToml(r?.toml as string)).config.egress[0]?.meshCaOnly).toBe(true)
    expect(r?.egress).toEqual(['127.0.0.1:8200 -> vault:8200: mTLS, any mesh member (meshCaOnly: no name check)'])
    expect(r?.warnings.some((w) => w.includes('accepts any mesh member for vault'))).toBe(true)
  })

  it('an empty admin-port annotation is unset; an empty egress annotation is refused, as contrast generate does', () => {
    const r = addInitdataToManifest(pod({ 'contrast.edgeless.systems/servicemesh-admin-interface-port': '' }), { coordinator }).results[0]
    expect(meshSectionFromInitdata(parseInitdataToml(r?.toml as string)).config.admin.exposed).toBe(false)
    const err = thrown(() => addInitdataToManifest(pod({ 'contrast.edgeless.systems/servicemesh-egress': '' }), { coordinator }))
    expect(err.details.issues).toMatchObject([{ source: 'contrast.edgeless.systems/servicemesh-egress', reason: 'EMPTY_VALUE' }])
  })
})
