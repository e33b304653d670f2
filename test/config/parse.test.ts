import { describe, it, expect } from 'vitest'
import {
  DEFAULT_ADMIN_PORT,
  meshConfigFromEnv,
  parseEgress,
  parseIngress,
  toPort,
  type ConfigIssue,
} from '../../src/config/index.js'
import { thrown } from '../support.js'

const CI = 'CONTRAST_INGRESS_PROXY_CONFIG'
const CE = 'CONTRAST_EGRESS_PROXY_CONFIG'
const CA = 'CONTRAST_ADMIN_PORT'
const TE = 'PODVM_MESH_TRANSPARENT_EGRESS'
const PT = 'PODVM_MESH_EGRESS_PLAINTEXT'

type Expected = Pick<ConfigIssue, 'source' | 'reason'> & Partial<Pick<ConfigIssue, 'entry' | 'index'>>

/** The comparable part of each issue: everything but the message. */
function issuesOf(env: NodeJS.ProcessEnv): Expected[] {
  const err = thrown(() => meshConfigFromEnv(env))
  expect(err.code).toBe('CONFIG_INVALID')
  return (err.details.issues as ConfigIssue[]).map(({ source, entry, index, reason }) => ({
    source,
    reason,
    ...(entry !== undefined ? { entry } : {}),
    ...(index !== undefined ? { index } : {}),
  }))
}

// [case, env, the one issue it must produce]
const MALFORMED: [string, NodeJS.ProcessEnv, Expected][] = [
  // ingress
  ['ingress port 0', { [CI]: 'web#0#false' }, { source: CI, entry: 'web#0#false', index: 0, reason: 'PORT_OUT_OF_RANGE' }],
  ['ingress port 65536', { [CI]: 'web#65536#false' }, { source: CI, entry: 'web#65536#false', index: 0, reason: 'PORT_OUT_OF_RANGE' }],
  ['ingress port not numeric', { [CI]: 'web#80a#false' }, { source: CI, entry: 'web#80a#false', index: 0, reason: 'PORT_NOT_NUMERIC' }],
  ['ingress port negative', { [CI]: 'web#-1#false' }, { source: CI, entry: 'web#-1#false', index: 0, reason: 'PORT_OUT_OF_RANGE' }],
  ['ingress port blank', { [CI]: 'web# #false' }, { source: CI, entry: 'web# #false', index: 0, reason: 'PORT_NOT_NUMERIC' }],
  ['duplicate ingress port', { [CI]: 'a#8080#true##b#8080#false' }, { source: CI, entry: 'b#8080#false', index: 1, reason: 'DUPLICATE_INGRESS_PORT' }],
  ['ingress on 15006', { [CI]: 'a#15006#true' }, { source: CI, entry: 'a#15006#true', index: 0, reason: 'PORT_RESERVED' }],
  ['ingress on 15007', { [CI]: 'a#15007#false' }, { source: CI, entry: 'a#15007#false', index: 0, reason: 'PORT_RESERVED' }],
  ['ingress on 15001', { [CI]: 'a#15001#false' }, { source: CI, entry: 'a#15001#false', index: 0, reason: 'PORT_RESERVED' }],
  ['ingress on default admin port', { [CI]: 'a#15020#true' }, { source: CI, entry: 'a#15020#true', index: 0, reason: 'PORT_RESERVED' }],
  ['two fields', { [CI]: 'a#80' }, { source: CI, entry: 'a#80', index: 0, reason: 'WRONG_FIELD_COUNT' }],
  ['four fields', { [CI]: 'a#80#true#x' }, { source: CI, entry: 'a#80#true#x', index: 0, reason: 'WRONG_FIELD_COUNT' }],
  ['flag yes', { [CI]: 'a#80#yes' }, { source: CI, entry: 'a#80#yes', index: 0, reason: 'INVALID_BOOLEAN' }],
  ['flag tRUE', { [CI]: 'a#80#tRUE' }, { source: CI, entry: 'a#80#tRUE', index: 0, reason: 'INVALID_BOOLEAN' }],
  ['duplicate ingress port, same rule, then another', { [CI]: 'a#8080#true##b#8080#true##c#8080#false' }, { source: CI, entry: 'c#8080#false', index: 2, reason: 'DUPLICATE_INGRESS_PORT' }],
  ['DISABLED among entries', { [CI]: 'DISABLED##a#9901#true' }, { source: CI, reason: 'INGRESS_DISABLED_WITH_PORTS' }],
  ['lowercase disabled', { [CI]: 'disabled' }, { source: CI, entry: 'disabled', index: 0, reason: 'WRONG_FIELD_COUNT' }],
  // egress
  ['listen outside 127/8', { [CE]: 'a#10.0.0.1:80#b:80' }, { source: CE, entry: 'a#10.0.0.1:80#b:80', index: 0, reason: 'LISTEN_NOT_LOCAL' }],
  ['listen on ::1', { [CE]: 'a#[::1]:80#b:80' }, { source: CE, entry: 'a#[::1]:80#b:80', index: 0, reason: 'LISTEN_NOT_LOCAL' }],
  ['listen on a name', { [CE]: 'a#localhost:80#b:80' }, { source: CE, entry: 'a#localhost:80#b:80', index: 0, reason: 'LISTEN_ADDRESS_INVALID' }],
  ['listen with octal-looking octet', { [CE]: 'a#127.000.0.1:80#b:80' }, { source: CE, entry: 'a#127.000.0.1:80#b:80', index: 0, reason: 'LISTEN_ADDRESS_INVALID' }],
  ['listen without port', { [CE]: 'a#127.0.0.1#b:80' }, { source: CE, entry: 'a#127.0.0.1#b:80', index: 0, reason: 'MISSING_PORT' }],
  ['remote without port', { [CE]: 'a#127.0.0.1:80#b' }, { source: CE, entry: 'a#127.0.0.1:80#b', index: 0, reason: 'MISSING_PORT' }],
  ['listen port 0', { [CE]: 'a#127.0.0.1:0#b:80' }, { source: CE, entry: 'a#127.0.0.1:0#b:80', index: 0, reason: 'PORT_OUT_OF_RANGE' }],
  ['remote port 99999', { [CE]: 'a#127.0.0.1:80#b:99999' }, { source: CE, entry: 'a#127.0.0.1:80#b:99999', index: 0, reason: 'PORT_OUT_OF_RANGE' }],
  ['listen port by name', { [CE]: 'a#127.0.0.1:http#b:80' }, { source: CE, entry: 'a#127.0.0.1:http#b:80', index: 0, reason: 'PORT_NOT_NUMERIC' }],
  ['duplicate listen', { [CE]: 'a#127.0.0.2:80#b:80##c#127.0.0.2:80#d:80' }, { source: CE, entry: 'c#127.0.0.2:80#d:80', index: 1, reason: 'DUPLICATE_LISTEN' }],
  ['listen on a mesh port', { [CE]: 'a#127.0.0.9:15001#b:80' }, { source: CE, entry: 'a#127.0.0.9:15001#b:80', index: 0, reason: 'LISTEN_PORT_RESERVED' }],
  ['listen on loopback admin', { [CE]: 'a#127.0.0.1:15020#b:80' }, { source: CE, entry: 'a#127.0.0.1:15020#b:80', index: 0, reason: 'LISTEN_PORT_RESERVED' }],
  ['listen on exposed admin port', { [CE]: 'a#127.0.0.5:9901#b:80', [CA]: '9901' }, { source: CE, entry: 'a#127.0.0.5:9901#b:80', index: 0, reason: 'LISTEN_PORT_RESERVED' }],
  ['remote with underscore', { [CE]: 'a#127.0.0.1:80#bad_host:80' }, { source: CE, entry: 'a#127.0.0.1:80#bad_host:80', index: 0, reason: 'INVALID_HOST' }],
  ['remote IPv6 without brackets', { [CE]: 'a#127.0.0.1:80#fd00::1:80' }, { source: CE, entry: 'a#127.0.0.1:80#fd00::1:80', index: 0, reason: 'INVALID_HOST' }],
  ['remote bad IPv6', { [CE]: 'a#127.0.0.1:80#[fd00::zz]:80' }, { source: CE, entry: 'a#127.0.0.1:80#[fd00::zz]:80', index: 0, reason: 'INVALID_HOST' }],
  ['remote unclosed bracket', { [CE]: 'a#127.0.0.1:80#[fd00::1:80' }, { source: CE, entry: 'a#127.0.0.1:80#[fd00::1:80', index: 0, reason: 'INVALID_HOST' }],
  ['remote label starts with -', { [CE]: 'a#127.0.0.1:80#-b.example:80' }, { source: CE, entry: 'a#127.0.0.1:80#-b.example:80', index: 0, reason: 'INVALID_HOST' }],
  ['remote all digits', { [CE]: 'a#127.0.0.1:80#1.2.3:80' }, { source: CE, entry: 'a#127.0.0.1:80#1.2.3:80', index: 0, reason: 'INVALID_HOST' }],
  ['egress two fields', { [CE]: 'a#127.0.0.1:80' }, { source: CE, entry: 'a#127.0.0.1:80', index: 0, reason: 'WRONG_FIELD_COUNT' }],
  // admin
  ['admin port 0', { [CA]: '0' }, { source: CA, entry: '0', reason: 'PORT_OUT_OF_RANGE' }],
  ['admin port text', { [CA]: 'abc' }, { source: CA, entry: 'abc', reason: 'PORT_NOT_NUMERIC' }],
  ['admin port on a mesh port', { [CA]: '15006' }, { source: CA, entry: '15006', reason: 'ADMIN_PORT_RESERVED' }],
  ['legacy admin port invalid', { EDG_ADMIN_PORT: '70000' }, { source: 'EDG_ADMIN_PORT', entry: '70000', reason: 'PORT_OUT_OF_RANGE' }],
  // current vs legacy names
  ['conflicting ingress values', { [CI]: 'a#1#true', EDG_INGRESS_PROXY_CONFIG: 'a#2#true' }, { source: CI, entry: 'a#1#true', reason: 'ENV_CONFLICT' }],
  ['conflicting egress values', { [CE]: 'a#127.0.0.1:1#b:1', EDG_EGRESS_PROXY_CONFIG: 'a#127.0.0.1:2#b:1' }, { source: CE, entry: 'a#127.0.0.1:1#b:1', reason: 'ENV_CONFLICT' }],
  ['conflicting admin values', { [CA]: '9901', EDG_ADMIN_PORT: '9902' }, { source: CA, entry: '9901', reason: 'ENV_CONFLICT' }],
  // transparent egress
  ['opt-in yes', { [TE]: 'yes' }, { source: TE, entry: 'yes', reason: 'INVALID_BOOLEAN' }],
  ['allow-list without opt-in', { [PT]: '10.0.0.0/8' }, { source: PT, reason: 'ALLOW_LIST_WITHOUT_OPT_IN' }],
  ['allow-list with opt-in false', { [TE]: 'false', [PT]: '10.0.0.0/8' }, { source: PT, reason: 'ALLOW_LIST_WITHOUT_OPT_IN' }],
  ['IPv4 host bits', { [TE]: 'true', [PT]: '10.0.0.1/8' }, { source: PT, entry: '10.0.0.1/8', index: 0, reason: 'CIDR_HOST_BITS_SET' }],
  ['IPv6 host bits', { [TE]: 'true', [PT]: '10.0.0.0/8,fd00::1/64' }, { source: PT, entry: 'fd00::1/64', index: 1, reason: 'CIDR_HOST_BITS_SET' }],
  ['prefix 33', { [TE]: 'true', [PT]: '10.0.0.0/33' }, { source: PT, entry: '10.0.0.0/33', index: 0, reason: 'INVALID_CIDR' }],
  ['not an address', { [TE]: 'true', [PT]: 'db.example' }, { source: PT, entry: 'db.example', index: 0, reason: 'INVALID_CIDR' }],
  ['empty allow entry', { [TE]: 'true', [PT]: '10.0.0.0/8,,192.0.2.0/24' }, { source: PT, entry: '', index: 1, reason: 'EMPTY_ENTRY' }],
  ['allow port 0', { [TE]: 'true', [PT]: '[fd00::/64]:0' }, { source: PT, entry: '[fd00::/64]:0', index: 0, reason: 'PORT_OUT_OF_RANGE' }],
  ['allow unclosed bracket', { [TE]: 'true', [PT]: '[fd00::/64' }, { source: PT, entry: '[fd00::/64', index: 0, reason: 'INVALID_CIDR' }],
  ['allow port text', { [TE]: 'true', [PT]: '10.0.0.0/8:pg' }, { source: PT, entry: '10.0.0.0/8:pg', index: 0, reason: 'PORT_NOT_NUMERIC' }],
  ['allow IPv6 port without brackets', { [TE]: 'true', [PT]: 'fd00::/64:443' }, { source: PT, entry: 'fd00::/64:443', index: 0, reason: 'INVALID_CIDR' }],
]

describe('meshConfigFromEnv rejects', () => {
  it(`has at least 30 cases (${MALFORMED.length})`, () => {
    expect(MALFORMED.length).toBeGreaterThanOrEqual(30)
  })
  it.each(MALFORMED)('%s', (_name, env, expected) => {
    expect(issuesOf(env)).toEqual([expected])
  })

  it('collects every problem of an input into one error whose message lists them all', () => {
    const env = {
      [CI]: 'a#0#true##b#80#maybe',
      [CE]: 'e#10.0.0.1:80#x:80##f#127.0.0.1:80#x',
      [CA]: '15007',
      [PT]: '10.0.0.0/8',
    }
    const err = thrown(() => meshConfigFromEnv(env))
    expect(err.code).toBe('CONFIG_INVALID')
    const issues = err.details.issues as ConfigIssue[]
    expect(issues.map((i) => [i.source, i.index, i.reason]).sort()).toEqual(
      [
        [CA, undefined, 'ADMIN_PORT_RESERVED'],
        [CE, 0, 'LISTEN_NOT_LOCAL'],
        [CE, 1, 'MISSING_PORT'],
        [CI, 0, 'PORT_OUT_OF_RANGE'],
        [CI, 1, 'INVALID_BOOLEAN'],
        [PT, undefined, 'ALLOW_LIST_WITHOUT_OPT_IN'],
      ].sort(),
    )
    for (const i of issues) expect(err.message).toContain(i.reason)
    expect(Object.isFrozen(issues)).toBe(true)
  })

  it('orders issues by source, then entry, whichever check found them', () => {
    const err = thrown(() => meshConfigFromEnv({ [CE]: 'x#127.0.0.1:0#y:1', [CI]: 'a#1#true####c#15006#true##d#x#maybe' }))
    expect((err.details.issues as ConfigIssue[]).map((i) => [i.source, i.index, i.reason])).toEqual([
      [CI, 2, 'PORT_RESERVED'],
      [CI, 3, 'INVALID_BOOLEAN'],
      [CI, 3, 'PORT_NOT_NUMERIC'],
      [CE, 0, 'PORT_OUT_OF_RANGE'],
    ])
  })

  it('names the legacy variable when the legacy value is the one in use', () => {
    expect(issuesOf({ EDG_INGRESS_PROXY_CONFIG: 'a#x#true' })).toEqual([
      { source: 'EDG_INGRESS_PROXY_CONFIG', entry: 'a#x#true', index: 0, reason: 'PORT_NOT_NUMERIC' },
    ])
  })
})

describe('meshConfigFromEnv accepts', () => {
  it('nothing set: ingress mTLS everywhere, no egress, admin on loopback', () => {
    expect(meshConfigFromEnv({})).toEqual({
      ingress: { enabled: true, rules: [] },
      egress: [],
      transparentEgress: { enabled: false, allowPlaintext: [] },
      admin: { port: 15020, exposed: false },
    })
    expect(DEFAULT_ADMIN_PORT).toBe(15020)
  })

  it("Contrast's emojivoto egress example", () => {
    const c = meshConfigFromEnv({ [CE]: 'emoji#127.137.0.1:8081#emoji-svc:8080##voting#127.137.0.2:8081#voting-svc:8080' })
    expect(c.egress).toEqual([
      { name: 'emoji', listen: { address: '127.137.0.1', port: 8081 }, remote: { host: 'emoji-svc', port: 8080 } },
      { name: 'voting', listen: { address: '127.137.0.2', port: 8081 }, remote: { host: 'voting-svc', port: 8080 } },
    ])
    expect(c.ingress).toEqual({ enabled: true, rules: [] })
  })

  it("Contrast's e2e example: ingress DISABLED, one egress", () => {
    const c = meshConfigFromEnv({ [CI]: 'DISABLED', [CE]: 'web#127.137.0.3:8081#web-svc:443' })
    expect(c.ingress).toEqual({ enabled: false, rules: [] })
    expect(c.egress).toEqual([{ name: 'web', listen: { address: '127.137.0.3', port: 8081 }, remote: { host: 'web-svc', port: 443 } }])
  })

  it('an empty ingress value is secure by default', () => {
    expect(meshConfigFromEnv({ [CI]: '' }).ingress).toEqual({ enabled: true, rules: [] })
  })

  it('maps #true to passthrough and #false to tls, sorted by port', () => {
    const c = meshConfigFromEnv({ [CI]: 'web#8443#false##metrics#9090#true##db#5432#true' })
    expect(c.ingress.rules).toEqual([
      { name: 'db', port: 5432, mode: 'passthrough' },
      { name: 'web', port: 8443, mode: 'tls' },
      { name: 'metrics', port: 9090, mode: 'passthrough' },
    ])
  })

  it('reads the legacy EDG_ names', () => {
    const c = meshConfigFromEnv({
      EDG_INGRESS_PROXY_CONFIG: 'web#8080#false',
      EDG_EGRESS_PROXY_CONFIG: 'b#127.0.0.2:80#backend:80',
      EDG_ADMIN_PORT: '9901',
    })
    expect(c.ingress.rules).toEqual([{ name: 'web', port: 8080, mode: 'tls' }])
    expect(c.egress).toHaveLength(1)
    expect(c.admin).toEqual({ port: 9901, exposed: true })
  })

  it('accepts equal EDG_ and CONTRAST_ values', () => {
    const c = meshConfigFromEnv({ [CI]: 'web#8080#true', EDG_INGRESS_PROXY_CONFIG: 'web#8080#true', [CA]: '9901', EDG_ADMIN_PORT: '9901' })
    expect(c.ingress.rules).toEqual([{ name: 'web', port: 8080, mode: 'passthrough' }])
    expect(c.admin.port).toBe(9901)
  })

  it('an admin port makes admin exposed; an egress listener may share its port on another loopback address', () => {
    const c = meshConfigFromEnv({ [CA]: '9901', [CE]: 'a#127.0.0.1:9902#x:1' })
    expect(c.admin).toEqual({ port: 9901, exposed: true })
    const d = meshConfigFromEnv({ [CE]: 'a#127.0.0.2:15020#x:1' })
    expect(d.egress[0]?.listen).toEqual({ address: '127.0.0.2', port: 15020 })
  })

  it('sorts egress by address numerically, then port', () => {
    const c = meshConfigFromEnv({
      [CE]: 'c#127.0.0.10:80#x:1##b#127.0.0.9:81#x:1##a#127.0.0.9:80#x:1##d#127.1.0.0:1#x:1',
    })
    expect(c.egress.map((e) => e.name)).toEqual(['a', 'b', 'c', 'd'])
  })

  it('normalizes remote hosts: DNS lowercased, IPv6 unbracketed and canonical', () => {
    const c = meshConfigFromEnv({
      [CE]: 'a#127.0.0.1:1#Backend.Default.SVC:8080##b#127.0.0.2:1#[FD00:0:0::0:1]:8080##c#127.0.0.3:1#10.1.2.3:443',
    })
    expect(c.egress.map((e) => e.remote)).toEqual([
      { host: 'backend.default.svc', port: 8080 },
      { host: 'fd00::1', port: 8080 },
      { host: '10.1.2.3', port: 443 },
    ])
  })

  it('refuses an IPv4-mapped IPv6 egress host, naming the IPv4 form (no IP SAN could ever match it)', () => {
    const env = { [CE]: 'db#127.0.0.1:5432#[::ffff:10.0.0.7]:5432' }
    expect(issuesOf(env)).toMatchObject([{ reason: 'INVALID_HOST' }])
    expect(thrown(() => meshConfigFromEnv(env)).details.issues[0].message).toContain('write 10.0.0.7')
    expect(meshConfigFromEnv({ [CE]: 'db#127.0.0.1:5432#[::10.0.0.7]:5432' }).egress[0]?.remote.host).toBe('::a00:7')
  })

  it('an absolute egress host (trailing dot) is dialled with the dot and matched without it', async () => {
    const c = meshConfigFromEnv({ [CE]: 'db#127.0.0.1:5432#DB.ns.svc.cluster.local.:5432' })
    expect(c.egress[0]?.remote).toEqual({ host: 'db.ns.svc.cluster.local', port: 5432, absolute: true })
    const { deriveSpec } = await import('../../src/dataplane/spec.js')
    const l = deriveSpec(c).listeners.find((x) => x.kind === 'egress')
    expect(l).toMatchObject({ upstream: { host: 'db.ns.svc.cluster.local.', port: 5432 }, verifyName: 'db.ns.svc.cluster.local' })
    const { renderMeshSection, parseMeshSection } = await import('../../src/config/index.js')
    const coordinator = { address: { host: 'coordinator', port: 7777 }, identity: 'ab'.repeat(32) } as never
    expect(parseMeshSection(renderMeshSection({ config: c, coordinator })).config).toEqual(c)
    for (const bad of ['db#127.0.0.1:1#db..:1', 'db#127.0.0.1:1#.:1', 'db#127.0.0.1:1#10.0.0.1.:1']) {
      expect(issuesOf({ [CE]: bad })).toMatchObject([{ reason: 'INVALID_HOST' }])
    }
  })

  it('an egress entry opts out of secure naming only by name, and the choice survives initdata', async () => {
    const c = meshConfigFromEnv({ [CE]: 'vault#127.0.0.1:8200#vault:8200##db#127.0.0.2:5432#db:5432', PODVM_MESH_EGRESS_MESH_CA_ONLY: 'vault' })
    expect(c.egress.map((e) => [e.name, e.meshCaOnly])).toEqual([
      ['vault', true],
      ['db', undefined],
    ])
    expect(issuesOf({ [CE]: 'db#127.0.0.2:5432#db:5432', PODVM_MESH_EGRESS_MESH_CA_ONLY: 'vault' })).toEqual([
      { source: 'PODVM_MESH_EGRESS_MESH_CA_ONLY', entry: 'vault', index: 0, reason: 'UNKNOWN_EGRESS_NAME' },
    ])
    const { renderMeshSection, parseMeshSection, meshConfigFromText } = await import('../../src/config/index.js')
    const coordinator = { address: { host: 'coordinator', port: 7777 }, identity: 'ab'.repeat(32) } as never
    const text = renderMeshSection({ config: c, coordinator })
    expect(text).toContain('meshCaOnly = true')
    expect(parseMeshSection(text).config).toEqual(c)
    expect(meshConfigFromText('[[egress]]\nname = "v"\nlisten = "127.0.0.1:1"\nremote = "v:1"\nmeshCaOnly = true\n', 'toml').egress[0]?.meshCaOnly).toBe(true)
  })

  it('egress names are free text and may repeat; the data plane gets safe, unique listener names', async () => {
    const c = meshConfigFromEnv({ [CE]: 'my db#127.0.0.1:80#b:80##my db#127.0.0.2:80#c:80##ingress#127.0.0.3:80#d:80##a"b{c}#127.0.0.4:80#e:80' })
    const { deriveSpec } = await import('../../src/dataplane/spec.js')
    expect(deriveSpec(c).listeners.map((l) => l.name)).toEqual(['ingress', 'ingress-no-client-auth', 'my_db', 'my_db-2', 'ingress-2', 'a_b_c_'])
    expect(issuesOf({ [CE]: '#127.0.0.1:80#b:80' })).toMatchObject([{ reason: 'INVALID_NAME' }])
  })

  it('reads flags as Go booleans and ports as Go integers, as Contrast does', () => {
    expect(meshConfigFromEnv({ [CI]: 'a#+0080#T##b#08443#False' }).ingress.rules).toEqual([
      { name: 'a', port: 80, mode: 'passthrough' },
      { name: 'b', port: 8443, mode: 'tls' },
    ])
  })

  it('says what Contrast would have done with a port it wraps', () => {
    const err = thrown(() => meshConfigFromEnv({ [CI]: 'w#70000#true##x#-1#true##y#0#false', [CE]: 'a#127.0.0.1:80#b:65536' }))
    const messages = (err.details.issues as ConfigIssue[]).map((i) => i.message)
    expect(messages[0]).toContain('Contrast would silently use port 4464')
    expect(messages[1]).toContain('Contrast would silently use port 65535')
    expect(messages[2]).toContain('port 0')
    expect(messages[3]).toContain('Contrast would silently use port 0')
  })

  it('tolerates surrounding whitespace of a whole value (YAML block scalars end in a newline)', () => {
    expect(meshConfigFromEnv({ [CI]: 'DISABLED\n' }).ingress.enabled).toBe(false)
    expect(meshConfigFromEnv({ [CE]: 'a#127.0.0.1:80#b:80\n' }).egress).toHaveLength(1)
  })

  it('transparent egress: normalized, sorted, deduplicated allow-list', () => {
    const c = meshConfigFromEnv({
      [TE]: 'true',
      [PT]: 'fd00::/64, 192.0.2.7/32:5432,10.0.0.0/8,[fd00::/64]:443,192.0.2.7,10.0.0.0/8,[FD00:0::1]:8443',
    })
    expect(c.transparentEgress).toEqual({
      enabled: true,
      allowPlaintext: [
        { cidr: '10.0.0.0/8', family: 4 },
        { cidr: '192.0.2.7/32', family: 4 },
        { cidr: '192.0.2.7/32', family: 4, port: 5432 },
        { cidr: 'fd00::/64', family: 6 },
        { cidr: 'fd00::/64', family: 6, port: 443 },
        { cidr: 'fd00::1/128', family: 6, port: 8443 },
      ],
    })
  })

  it('transparent egress off with an empty allow-list is fine', () => {
    expect(meshConfigFromEnv({ [TE]: 'false', [PT]: '' }).transparentEgress).toEqual({ enabled: false, allowPlaintext: [] })
  })

  it('returns a deeply frozen config', () => {
    const c = meshConfigFromEnv({ [CI]: 'web#8443#false', [CE]: 'a#127.0.0.1:80#b:80', [TE]: 'true', [PT]: '10.0.0.0/8' })
    expect(Object.isFrozen(c)).toBe(true)
    expect(Object.isFrozen(c.ingress.rules)).toBe(true)
    expect(Object.isFrozen(c.ingress.rules[0])).toBe(true)
    expect(Object.isFrozen(c.egress[0]?.listen)).toBe(true)
    expect(Object.isFrozen(c.transparentEgress.allowPlaintext[0])).toBe(true)
    expect(() => {
      ;(c.ingress.rules as unknown as unknown[]).push(1)
    }).toThrow()
  })
})

describe('parseIngress / parseEgress', () => {
  it('parse one value, reporting the given source', () => {
    expect(parseIngress('web#8443#false')).toEqual({ enabled: true, rules: [{ name: 'web', port: 8443, mode: 'tls' }] })
    expect(parseEgress('a#127.0.0.1:80#b:80')).toEqual([
      { name: 'a', listen: { address: '127.0.0.1', port: 80 }, remote: { host: 'b', port: 80 } },
    ])
    const err = thrown(() => parseIngress('web#0#false', { source: 'annotation' }))
    expect(err.code).toBe('CONFIG_INVALID')
    expect(err.details.issues).toMatchObject([{ source: 'annotation', entry: 'web#0#false', reason: 'PORT_OUT_OF_RANGE' }])
  })

  it('check against a given admin port', () => {
    expect(parseIngress('a#9901#true').rules).toHaveLength(1)
    // Contrast's tooling writes exactly this for its admin port: accepted, with its meaning.
    expect(parseIngress('a#9901#true', { adminPort: 9901 }).rules).toEqual([{ name: 'a', port: 9901, mode: 'passthrough' }])
    expect(thrown(() => parseEgress('a#127.0.0.3:9901#b:1', { adminPort: 9901 })).details.issues).toMatchObject([
      { reason: 'LISTEN_PORT_RESERVED' },
    ])
  })

  it('an empty egress value is no egress, as in Contrast', () => {
    expect(parseEgress('')).toEqual([])
    expect(parseEgress('##')).toEqual([])
  })
})

describe('toPort', () => {
  it('mints valid ports and refuses others with the same reasons as the parser', () => {
    expect(toPort(1)).toBe(1)
    expect(toPort(65535)).toBe(65535)
    expect(thrown(() => toPort(0)).details.issues).toMatchObject([{ source: 'port', entry: '0', reason: 'PORT_OUT_OF_RANGE' }])
    expect(thrown(() => toPort(65536, 'spec.port')).details.issues).toMatchObject([{ source: 'spec.port', reason: 'PORT_OUT_OF_RANGE' }])
    expect(thrown(() => toPort(1.5)).details.issues).toMatchObject([{ reason: 'PORT_NOT_NUMERIC' }])
    expect(thrown(() => toPort(Number.NaN)).details.issues).toMatchObject([{ reason: 'PORT_NOT_NUMERIC' }])
  })
})
