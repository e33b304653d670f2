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
