import { createHash } from 'node:crypto'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, describe, it, expect } from 'vitest'
import { parseAllDocuments } from 'yaml'
import { main } from '../../src/cli.js'
import { INITDATA_ANNOTATION } from '../../src/config/index.js'
import { capturedIo } from './io.js'

const fakeIo = () => capturedIo()

const dir = mkdtempSync(join(tmpdir(), 'initdata-cmd-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const fixture = (name: string) => new URL(`../policy/fixtures/${name}`, import.meta.url).pathname
const ID = 'ab'.repeat(32)
const PIN = ['--coordinator', 'coordinator:1313', '--coordinator-identity', ID]

function annotationDigests(manifest: string): string[] {
  return parseAllDocuments(manifest)
    .map((d: any) => d.toJS())
    .map((o: any) => (o.kind === 'Pod' ? o.metadata : o.spec?.template?.metadata)?.annotations?.[INITDATA_ANNOTATION])
    .filter((v: unknown): v is string => typeof v === 'string')
    .map((v) => createHash('sha256').update(gunzipSync(Buffer.from(v, 'base64'))).digest('hex'))
}

describe('podvm-mesh initdata', () => {
  it('--write rewrites the manifest and prints digest and resource per line', async () => {
    const path = join(dir, 'w.yaml')
    copyFileSync(fixture('workloads.yaml'), path)
    const io = fakeIo()
    expect(await main(['initdata', path, ...PIN, '--policy', fixture('generated-policy.rego'), '--write'], io)).toBe(0)
    const digests = annotationDigests(readFileSync(path, 'utf8'))
    // One digest line per resource (unchanged for scripts), each followed by its indented plan.
    expect(io.out().split('\n').filter((l) => l !== '' && !l.startsWith('  '))).toEqual([
      `${digests[0]}  Deployment/shop/web`,
      `${digests[1]}  Job/migrate`,
      `${digests[2]}  StatefulSet/db`,
    ])
    expect(io.err()).toContain('skipped Pod/plain')
    expect(io.err()).toContain('StatefulSet/db: warning: container "db" does not drop NET_RAW')
  })

  it('without --out the manifest goes to stdout and the digests to stderr; --json gives all forms', async () => {
    const io = fakeIo()
    expect(await main(['initdata', fixture('workloads.yaml'), ...PIN, '--json', '--algorithm', 'sha384'], io)).toBe(0)
    expect(annotationDigests(io.out())).toHaveLength(3)
    const json = JSON.parse(io.err().slice(io.err().indexOf('[')))
    expect(json[0]).toMatchObject({ resource: { kind: 'Deployment', name: 'web' }, algorithm: 'sha384', policy: 'none' })
    expect(json[0].digest).toHaveLength(96)
    expect(json[0].snpHostData).toBe(json[0].digest.slice(0, 64))
    expect(json[0].tdxMrConfigId).toBe(json[0].digest)
  })

  it('bad annotations: exit 2, resource and entry on stderr, nothing written', async () => {
    const out = join(dir, 'bad.yaml')
    const io = fakeIo()
    expect(await main(['initdata', fixture('bad-ingress.yaml'), ...PIN, '--out', out], io)).toBe(2)
    expect(io.err()).toContain('DaemonSet/ops/agent')
    expect(io.err()).toContain('"bad#99999#false": PORT_OUT_OF_RANGE')
    expect(() => readFileSync(out)).toThrow()
  })

  it.each([
    [['initdata', 'x.yaml', '--coordinator', 'c:1'], '--coordinator-identity'],
    [['initdata', 'x.yaml', '--coordinator-identity', ID], '--coordinator HOST:PORT'],
    [['initdata', ...PIN], 'exactly one manifest'],
    [['initdata', 'x.yaml', ...PIN, '--algorithm', 'md5'], '--algorithm'],
    [['initdata', '-', ...PIN, '--write'], '--write'],
  ])('usage error %j → exit 2', async (argv, text) => {
    const io = fakeIo()
    expect(await main(argv, io)).toBe(2)
    expect(io.err()).toContain(text)
  })

  it('an invalid coordinator pin is reported like any config issue', async () => {
    const io = fakeIo()
    expect(await main(['initdata', fixture('workloads.yaml'), '--coordinator', 'coordinator', '--coordinator-identity', 'zz'], io)).toBe(2)
    expect(io.err()).toContain('initdata:podvm-mesh.toml:coordinator.address "coordinator": MISSING_PORT')
    expect(io.err()).toContain('coordinator.identity "zz": INVALID_VALUE')
  })
})

describe('podvm-mesh initdata with emojivoto as Contrast users write it', () => {
  const emojivoto = new URL('../fixtures/emojivoto/emojivoto.yaml', import.meta.url).pathname

  it('prints, per pod, its names and what the mesh does on each port and egress entry', async () => {
    const io = fakeIo()
    expect(await main(['initdata', emojivoto, ...PIN, '--out', join(dir, 'e.yaml')], io)).toBe(0)
    const out = io.out()
    expect(out).toContain('  names: web, web-svc, web-svc.default, web-svc.default.svc, web-svc.default.svc.cluster.local\n')
    expect(out).toContain('  port 8080 (container web-svc port https; Service web-svc:443; ingress entry "web"): TLS terminated by the mesh, no client certificate (#false)\n')
    expect(out).toContain('  port 8801 (container emoji-svc port prom; Service emoji-svc:8801): mTLS: TLS terminated by the mesh, client certificate from the mesh CA required\n')
    expect(out).toContain("  egress 127.137.0.1:8081 -> emoji-svc:8080: mTLS, the server's certificate must name emoji-svc\n")
  })

  it('--coordinator-manifest writes each pod policy with the Service names, and replaces a workload older policy', async () => {
    const path = join(dir, 'coordinator-manifest.json')
    const stale = 'cd'.repeat(32)
    const { writeFileSync } = await import('node:fs')
    writeFileSync(path, JSON.stringify({ policies: { [stale]: { sans: ['web'], workloadSecretId: 'apps/v1/Deployment/default/web' } }, referenceValues: { snp: { products: ['Genoa'], measurements: ['ee'.repeat(48)] } } }))
    const io = fakeIo()
    expect(await main(['initdata', emojivoto, ...PIN, '--out', join(dir, 'e2.yaml'), '--coordinator-manifest', path], io)).toBe(0)
    const written = JSON.parse(readFileSync(path, 'utf8'))
    const digests = annotationDigests(readFileSync(join(dir, 'e2.yaml'), 'utf8'))
    // Four workloads, four distinct hashes: the identity is measured with the config.
    expect(new Set(digests).size).toBe(4)
    expect(Object.keys(written.policies).sort()).toEqual([...digests].sort())
    expect(written.referenceValues).toEqual({ snp: { products: ['Genoa'], measurements: ['ee'.repeat(48)] } })
    const byId = Object.fromEntries(Object.values(written.policies).map((p: any) => [p.workloadSecretId, p.sans]))
    expect(byId['apps/v1/Deployment/default/emoji']).toEqual(['emoji', 'emoji-svc', 'emoji-svc.default', 'emoji-svc.default.svc', 'emoji-svc.default.svc.cluster.local'])
    expect(byId['apps/v1/Deployment/default/vote-bot']).toEqual(['vote-bot'])
    expect(io.err()).toContain('4 policies written, 1 older replaced')
  })
})
