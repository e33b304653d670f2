import { describe, it, expect } from 'vitest'
import {
  MESH_INITDATA_KEY,
  meshConfigFromStrings,
  meshConfigFromText,
  meshSectionFromInitdata,
  parseInitdataToml,
  parseMeshSection,
  renderInitdataToml,
  renderMeshSection,
  type ConfigIssue,
} from '../../src/config/index.js'
import { thrown } from '../support.js'

const ID = 'c0ffee'.repeat(16) // 48 bytes
const COORD = `[coordinator]\naddress = "coordinator.contrast.svc:1313"\nidentity = "${ID}"\n`

const MESH = `${COORD}
[ingress]
ports = [ { name = "metrics", port = 9090, mode = "passthrough" } ]

[[egress]]
name = "db"
listen = "127.137.0.1:5432"
remote = "db-svc:5432"
`

function issues(fn: () => unknown): Pick<ConfigIssue, 'source' | 'reason'>[] {
  const err = thrown(fn)
  expect(err.code).toBe('CONFIG_INVALID')
  return (err.details.issues as ConfigIssue[]).map(({ source, reason }) => ({ source, reason }))
}

describe('parseMeshSection', () => {
  it('gives the same MeshConfig as the file parser for the same mesh tables, plus the coordinator pin', () => {
    const section = parseMeshSection(MESH)
    expect(section.coordinator).toEqual({ address: { host: 'coordinator.contrast.svc', port: 1313 }, identity: ID })
    expect(section.config).toEqual(meshConfigFromText(MESH.replace(COORD, ''), 'toml'))
    expect(section.config.egress[0]?.remote).toEqual({ host: 'db-svc', port: 5432 })
  })

  it('accepts an IPv6 coordinator in brackets and upper-case identity hex', () => {
    const s = parseMeshSection(`[coordinator]\naddress = "[fd00::1]:1313"\nidentity = "${'AB'.repeat(32)}"\n`)
    expect(s.coordinator).toEqual({ address: { host: 'fd00::1', port: 1313 }, identity: 'ab'.repeat(32) })
  })

  it('reports mesh-config problems with initdata sources, coordinator problems next to them, all at once', () => {
    const text = `[coordinator]\naddress = "coordinator"\nidentity = "xyz"\nextra = 1\n[ingress]\nports = [ { name = "a", port = 70000, mode = "tls" } ]\n`
    expect(issues(() => parseMeshSection(text))).toEqual(
      expect.arrayContaining([
        { source: 'initdata:podvm-mesh.toml:coordinator.address', reason: 'MISSING_PORT' },
        { source: 'initdata:podvm-mesh.toml:coordinator.identity', reason: 'INVALID_VALUE' },
        { source: 'initdata:podvm-mesh.toml:coordinator.extra', reason: 'UNKNOWN_KEY' },
        { source: 'initdata:podvm-mesh.toml:ingress.ports[0].port', reason: 'PORT_OUT_OF_RANGE' },
      ]),
    )
  })

  it.each([
    ['no coordinator table', '[ingress]\ndisabled = true\n', 'coordinator', 'MISSING_FIELD'],
    ['coordinator not a table', `coordinator = "x"\n`, 'coordinator', 'WRONG_TYPE'],
    ['no identity', '[coordinator]\naddress = "c:1"\n', 'coordinator.identity', 'MISSING_FIELD'],
    ['identity of 20 bytes', `[coordinator]\naddress = "c:1"\nidentity = "${'00'.repeat(20)}"\n`, 'coordinator.identity', 'INVALID_VALUE'],
    ['address port 0', `[coordinator]\naddress = "c:0"\nidentity = "${ID}"\n`, 'coordinator.address', 'PORT_OUT_OF_RANGE'],
    ['address port text', `[coordinator]\naddress = "c:http"\nidentity = "${ID}"\n`, 'coordinator.address', 'PORT_NOT_NUMERIC'],
    ['address bad host', `[coordinator]\naddress = "bad_host!:1"\nidentity = "${ID}"\n`, 'coordinator.address', 'INVALID_HOST'],
    ['address a number', `[coordinator]\naddress = 1313\nidentity = "${ID}"\n`, 'coordinator.address', 'WRONG_TYPE'],
    ['unknown mesh key', `${COORD}[bogus]\n`, 'bogus', 'UNKNOWN_KEY'],
    ['TOML syntax', '[coordinator\n', '', 'FILE_SYNTAX'],
    // Hostile shapes (the host writes the initdata device; it is parsed before any digest is compared):
    ['a table as a measurement', `${COORD}measurements = [ { a = 1 } ]\n`, 'coordinator.measurements', 'INVALID_VALUE'],
    ['a table as an RTMR pin', `${COORD}rtmr = [ { a = 1 } ]\n`, 'coordinator.rtmr', 'INVALID_VALUE'],
    ['a port nested 100000 tables deep', `${COORD}[admin]\nport${'.a'.repeat(100_000)} = 1\n`, 'admin.port', 'WRONG_TYPE'],
  ])('%s → %s %s', (_, text, field, reason) => {
    const source = field === '' ? 'initdata:podvm-mesh.toml' : `initdata:podvm-mesh.toml:${field}`
    expect(issues(() => parseMeshSection(text))).toContainEqual({ source, reason })
  })
})

describe('coordinator measurements', () => {
  const M = 'ab'.repeat(48)
  it('are read lower-cased, and survive a render round trip', () => {
    const section = parseMeshSection(`${COORD}measurements = ["${M.toUpperCase()}", "${'cd'.repeat(48)}"]\n`)
    expect(section.coordinator.measurements).toEqual([M, 'cd'.repeat(48)])
    expect(parseMeshSection(renderMeshSection(section))).toEqual(section)
  })
  it.each([
    ['not an array', `measurements = "${M}"`, 'WRONG_TYPE'],
    ['empty', 'measurements = []', 'WRONG_TYPE'],
    ['short hex', `measurements = ["${'ab'.repeat(32)}"]`, 'INVALID_VALUE'],
  ])('refuses %s', (_label, line, reason) => {
    expect(issues(() => parseMeshSection(`${COORD}${line}\n`))).toEqual([{ source: `initdata:${MESH_INITDATA_KEY}:coordinator.measurements`, reason }])
  })
})

describe('coordinator RTMR pins (TDX)', () => {
  const R1 = `1=${'11'.repeat(48)}`
  const R2 = `2=${'22'.repeat(48)}`
  it('are read lower-cased, and survive a render round trip', () => {
    const section = parseMeshSection(`${COORD}rtmr = ["${R1.toUpperCase()}", "${R2}"]\n`)
    expect(section.coordinator.rtmr).toEqual([R1, R2])
    expect(parseMeshSection(renderMeshSection(section))).toEqual(section)
  })
  it.each([
    ['not an array', `rtmr = "${R1}"`, 'WRONG_TYPE'],
    ['an index out of range', `rtmr = ["4=${'11'.repeat(48)}"]`, 'INVALID_VALUE'],
    ['no index', `rtmr = ["${'11'.repeat(48)}"]`, 'INVALID_VALUE'],
  ])('refuses %s', (_label, line, reason) => {
    expect(issues(() => parseMeshSection(`${COORD}${line}\n`))).toEqual([{ source: `initdata:${MESH_INITDATA_KEY}:coordinator.rtmr`, reason }])
  })
})

describe('renderMeshSection', () => {
  const coordinator = parseMeshSection(COORD).coordinator
  it.each([
    ['defaults', {}],
    ['ingress exceptions', { ingress: { value: 'a#80#true##b#443#false', source: 'x' } }],
    ['DISABLED', { ingress: { value: 'DISABLED', source: 'x' } }],
    ['egress with v6 remote', { egress: { value: 'e#127.0.0.9:80#[fd00::7]:80##f#127.0.0.8:81#svc:81', source: 'x' } }],
    ['exposed admin', { adminPort: { value: '9901', source: 'x' } }],
    [
      'transparent egress with allow-list',
      { transparentEgress: { value: true, source: 'x' }, allowPlaintext: { value: '10.0.0.0/8,192.0.2.7/32:53,[fd00::/64]:443', source: 'y' } },
    ],
  ])('%s: parse(render(x)) is x', (_, inputs) => {
    const config = meshConfigFromStrings(inputs)
    const text = renderMeshSection({ config, coordinator })
    expect(parseMeshSection(text)).toEqual({ config, coordinator })
  })

  it('leaves defaults out of the measured text', () => {
    const text = renderMeshSection({ config: meshConfigFromStrings({}), coordinator })
    expect(text).not.toMatch(/ingress|egress|admin/)
  })
})

describe('meshSectionFromInitdata', () => {
  it(`reads [data]."${MESH_INITDATA_KEY}"`, () => {
    const doc = parseInitdataToml(renderInitdataToml('sha256', { 'policy.rego': 'package agent_policy\n', [MESH_INITDATA_KEY]: MESH }))
    expect(meshSectionFromInitdata(doc).coordinator.identity).toBe(ID)
  })

  it('INITDATA_NO_MESH_SECTION names the keys that are there', () => {
    const doc = parseInitdataToml(renderInitdataToml('sha256', { 'policy.rego': 'p' }))
    expect(thrown(() => meshSectionFromInitdata(doc))).toMatchObject({
      code: 'INITDATA_NO_MESH_SECTION',
      details: { key: MESH_INITDATA_KEY, keys: ['policy.rego'] },
    })
  })
})
