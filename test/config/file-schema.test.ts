import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, it, expect } from 'vitest'
import { meshConfigFromEnv, meshConfigFromFile, meshConfigFromText, type ConfigIssue } from '../../src/config/index.js'
import { thrown } from '../support.js'

const TOML = `
[ingress]
disabled = false
[[ingress.ports]]
name = "web"
port = 8443
mode = "tls"
[[ingress.ports]]
name = "db"
port = 5432
mode = "passthrough"
[[egress]]
name = "backend"
listen = "127.137.0.1:8080"
remote = "backend.default.svc:8080"
[transparentEgress]
enabled = true
allowPlaintext = ["10.0.0.0/8", "[fd00::/64]:443"]
[admin]
port = 9901
`

const JSON_DOC = {
  ingress: {
    disabled: false,
    ports: [
      { name: 'web', port: 8443, mode: 'tls' },
      { name: 'db', port: 5432, mode: 'passthrough' },
    ],
  },
  egress: [{ name: 'backend', listen: '127.137.0.1:8080', remote: 'backend.default.svc:8080' }],
  transparentEgress: { enabled: true, allowPlaintext: ['10.0.0.0/8', '[fd00::/64]:443'] },
  admin: { port: 9901 },
}

// The same configuration in the string syntax.
const ENV = {
  CONTRAST_INGRESS_PROXY_CONFIG: 'web#8443#false##db#5432#true',
  CONTRAST_EGRESS_PROXY_CONFIG: 'backend#127.137.0.1:8080#backend.default.svc:8080',
  CONTRAST_ADMIN_PORT: '9901',
  PODVM_MESH_TRANSPARENT_EGRESS: 'true',
  PODVM_MESH_EGRESS_PLAINTEXT: '10.0.0.0/8,[fd00::/64]:443',
}

function issues(fn: () => unknown): Pick<ConfigIssue, 'source' | 'reason' | 'entry' | 'index'>[] {
  const err = thrown(fn)
  expect(err.code).toBe('CONFIG_INVALID')
  return (err.details.issues as ConfigIssue[]).map(({ source, reason, entry, index }) => ({ source, reason, entry, index }))
}

const toml = (text: string) => () => meshConfigFromText(text, 'toml')
const json = (doc: unknown) => () => meshConfigFromText(JSON.stringify(doc), 'json')

describe('meshConfigFromText', () => {
  it('TOML, JSON and the env strings give the same config', () => {
    const fromToml = meshConfigFromText(TOML, 'toml')
    expect(fromToml).toEqual(meshConfigFromText(JSON.stringify(JSON_DOC), 'json'))
    expect(fromToml).toEqual(meshConfigFromEnv(ENV))
    expect(fromToml.ingress.rules.map((r) => r.port)).toEqual([5432, 8443])
    expect(fromToml.admin).toEqual({ port: 9901, exposed: true })
    expect(Object.isFrozen(fromToml.egress[0])).toBe(true)
  })

  it('an empty document is the default config', () => {
    expect(meshConfigFromText('', 'toml')).toEqual(meshConfigFromEnv({}))
    expect(meshConfigFromText('{}', 'json')).toEqual(meshConfigFromEnv({}))
  })

  it('ingress.disabled = true', () => {
    expect(meshConfigFromText('[ingress]\ndisabled = true\n', 'toml').ingress).toEqual({ enabled: false, rules: [] })
  })

  it.each([
    ['unknown top-level key', { ...JSON_DOC, extra: 1 }, { source: 'file:extra', reason: 'UNKNOWN_KEY' }],
    ['unknown nested key', { ingress: { ports: [{ name: 'a', port: 1, mode: 'tls', tls: true }] } }, { source: 'file:ingress.ports[0].tls', reason: 'UNKNOWN_KEY', index: 0 }],
    ['port as string', { ingress: { ports: [{ name: 'a', port: '80', mode: 'tls' }] } }, { source: 'file:ingress.ports[0].port', reason: 'WRONG_TYPE', entry: '80', index: 0 }],
    ['missing mode', { ingress: { ports: [{ name: 'a', port: 80 }] } }, { source: 'file:ingress.ports[0].mode', reason: 'MISSING_FIELD', index: 0 }],
    ['unknown mode', { ingress: { ports: [{ name: 'a', port: 80, mode: 'mtls' }] } }, { source: 'file:ingress.ports[0].mode', reason: 'INVALID_VALUE', entry: 'mtls', index: 0 }],
    ['egress not an array', { egress: { name: 'a' } }, { source: 'file:egress', reason: 'WRONG_TYPE', entry: '{"name":"a"}' }],
    ['enabled as string', { transparentEgress: { enabled: 'true' } }, { source: 'file:transparentEgress.enabled', reason: 'WRONG_TYPE', entry: 'true' }],
    ['not an object', [1], { source: 'file', reason: 'WRONG_TYPE', entry: '[1]' }],
  ])('shape: %s', (_name, doc, expected) => {
    expect(issues(json(doc))).toEqual([{ entry: undefined, index: undefined, ...expected }])
  })

  it('applies the same semantic checks as the strings, reported at the field path', () => {
    const doc = {
      ingress: {
        ports: [
          { name: 'web', port: 8443, mode: 'tls' },
          { name: 'big', port: 70000, mode: 'tls' },
          { name: 'dup', port: 8443, mode: 'passthrough' },
          { name: 'frac', port: 80.5, mode: 'tls' },
        ],
      },
      egress: [
        { name: 'a', listen: '10.0.0.1:80', remote: 'b:80' },
        { name: 'b', listen: '127.0.0.2:80', remote: 'b_c:80' },
      ],
      transparentEgress: { enabled: false, allowPlaintext: ['10.0.0.1/8'] },
      admin: { port: 15001 },
    }
    expect(issues(json(doc))).toEqual([
      { source: 'file:admin.port', reason: 'ADMIN_PORT_RESERVED', entry: '15001', index: undefined },
      { source: 'file:ingress.ports[1].port', reason: 'PORT_OUT_OF_RANGE', entry: '70000', index: 1 },
      { source: 'file:ingress.ports[2].port', reason: 'DUPLICATE_INGRESS_PORT', entry: '8443', index: 2 },
      { source: 'file:ingress.ports[3].port', reason: 'PORT_NOT_NUMERIC', entry: '80.5', index: 3 },
      { source: 'file:egress[0].listen', reason: 'LISTEN_NOT_LOCAL', entry: '10.0.0.1:80', index: 0 },
      { source: 'file:egress[1].remote', reason: 'INVALID_HOST', entry: 'b_c:80', index: 1 },
      { source: 'file:transparentEgress.allowPlaintext', reason: 'ALLOW_LIST_WITHOUT_OPT_IN', entry: undefined, index: undefined },
      { source: 'file:transparentEgress.allowPlaintext[0]', reason: 'CIDR_HOST_BITS_SET', entry: '10.0.0.1/8', index: 0 },
    ])
  })

  it('disabled ingress with port exceptions is contradictory', () => {
    expect(issues(toml('[ingress]\ndisabled = true\n[[ingress.ports]]\nname = "a"\nport = 1\nmode = "tls"\n'))).toEqual([
      { source: 'file:ingress', reason: 'INGRESS_DISABLED_WITH_PORTS', entry: undefined, index: undefined },
    ])
  })

  it('syntax errors name the format', () => {
    expect(issues(toml('[ingress\n'))).toEqual([{ source: 'file', reason: 'FILE_SYNTAX', entry: undefined, index: undefined }])
    expect(issues(() => meshConfigFromText('{"ingress":', 'json'))).toEqual([
      { source: 'file', reason: 'FILE_SYNTAX', entry: undefined, index: undefined },
    ])
  })

  it('a TOML unknown key names its dotted path', () => {
    expect(issues(toml('[admin]\nport = 9901\naddress = "0.0.0.0"\n'))).toEqual([
      { source: 'file:admin.address', reason: 'UNKNOWN_KEY', entry: undefined, index: undefined },
    ])
  })
})

describe('meshConfigFromFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podvm-mesh-config-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('reads .toml and .json by extension', () => {
    writeFileSync(join(dir, 'mesh.toml'), TOML)
    writeFileSync(join(dir, 'mesh.JSON'), JSON.stringify(JSON_DOC))
    expect(meshConfigFromFile(join(dir, 'mesh.toml'))).toEqual(meshConfigFromEnv(ENV))
    expect(meshConfigFromFile(join(dir, 'mesh.JSON'))).toEqual(meshConfigFromEnv(ENV))
  })

  it('puts the file name into details', () => {
    const p = join(dir, 'bad.json')
    writeFileSync(p, '{"admin":{"port":0}}')
    const err = thrown(() => meshConfigFromFile(p))
    expect(err.code).toBe('CONFIG_INVALID')
    expect(err.details).toMatchObject({ file: p, issues: [{ source: 'file:admin.port', reason: 'PORT_OUT_OF_RANGE' }] })
  })

  it('refuses an unknown extension without reading', () => {
    const err = thrown(() => meshConfigFromFile(join(dir, 'mesh.yaml')))
    expect(err.code).toBe('CONFIG_INVALID')
    expect(err.details.issues).toMatchObject([{ reason: 'FILE_FORMAT_UNKNOWN' }])
  })

  it('a missing file is CONFIG_FILE_UNREADABLE with the cause kept', () => {
    const err = thrown(() => meshConfigFromFile(join(dir, 'absent.toml')))
    expect(err.code).toBe('CONFIG_FILE_UNREADABLE')
    expect(err.details.issues).toMatchObject([{ source: 'file', reason: 'FILE_UNREADABLE' }])
    expect(err.cause).toMatchObject({ code: 'ENOENT' })
  })
})
