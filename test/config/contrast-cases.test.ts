// Contrast's sidecar and podvm-mesh read the same configuration: each row is one kind of
// input, what Contrast does with it (from its parser, service-mesh/config.go, its
// iptables rules and its tooling, internal/kuberesource/mutators.go), and what we do.
// Where the two differ, `why` says why; a row without `why` must agree. "Contrast"
// means the sidecar with the tooling in front of it: an annotation it never passes on
// is as good as unset.
//
// Our side is computed from the real parser and the real rendered ruleset, never
// written down: the admin port's path is read from the nft script.

import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, meshConfigFromEnv, type ConfigReason, type MeshConfig } from '../../src/config/index.js'
import { renderFinal } from '../../src/netfilter/index.js'

const CI = 'CONTRAST_INGRESS_PROXY_CONFIG'
const CE = 'CONTRAST_EGRESS_PROXY_CONFIG'
const CA = 'CONTRAST_ADMIN_PORT'

/** A configuration as both sides can state it. */
interface Summary {
  /** `disabled`, or `port:mode` for every port with a rule (every other port: mTLS). */
  readonly ingress: 'disabled' | readonly string[]
  /** `listen -> host:port`, in the order written. */
  readonly egress: readonly string[]
  /** `port via mtls|tls|plaintext` when an admin interface listens beyond loopback. */
  readonly admin?: string
}
type Outcome = Summary | { readonly refused: true }
type Ours = Summary | { readonly refused: ConfigReason }

interface Case {
  readonly kind: string
  readonly env: NodeJS.ProcessEnv
  readonly contrast: Outcome
  readonly ours: Ours
  /** Required where ours differs from Contrast's. */
  readonly why?: string
}

const mtls = (admin?: string): Summary => ({ ingress: [], egress: [], ...(admin !== undefined ? { admin } : {}) })
const ing = (...rules: string[]): Summary => ({ ingress: rules, egress: [] })
const eg = (...rules: string[]): Summary => ({ ingress: [], egress: rules })
const REFUSED = { refused: true } as const
const no = (reason: ConfigReason) => ({ refused: reason }) as const

const EMOJI_EGRESS = 'emoji#127.137.0.1:8081#emoji-svc:8080##voting#127.137.0.2:8081#voting-svc:8080'

const CASES: Case[] = [
  // --- ingress: the value as a whole
  { kind: 'ingress unset', env: {}, contrast: mtls(), ours: mtls() },
  { kind: 'ingress empty (emojivoto emoji, voting)', env: { [CI]: '' }, contrast: mtls(), ours: mtls() },
  { kind: 'DISABLED', env: { [CI]: 'DISABLED' }, contrast: { ingress: 'disabled', egress: [] }, ours: { ingress: 'disabled', egress: [] } },
  { kind: 'disabled (lowercase) is an entry', env: { [CI]: 'disabled' }, contrast: REFUSED, ours: no('WRONG_FIELD_COUNT') },
  { kind: 'DISABLED with entries', env: { [CI]: 'DISABLED##admin#9901#true' }, contrast: REFUSED, ours: no('INGRESS_DISABLED_WITH_PORTS') },
  {
    kind: 'whole value with a trailing newline (YAML block scalar)',
    env: { [CI]: 'web#8080#true\n' },
    contrast: REFUSED,
    ours: ing('8080:passthrough'),
    why: 'Contrast reads the flag "true\\n" and fails; we trim the whole value, which only accepts what was clearly meant',
  },
  // --- ingress entries
  { kind: '#false: TLS without client certificate (emojivoto web)', env: { [CI]: 'web#8080#false' }, contrast: ing('8080:tls'), ours: ing('8080:tls') },
  { kind: '#true: not redirected', env: { [CI]: 'web#8080#true' }, contrast: ing('8080:passthrough'), ours: ing('8080:passthrough') },
  { kind: 'two entries', env: { [CI]: 'a#8080#true##b#8443#false' }, contrast: ing('8080:passthrough', '8443:tls'), ours: ing('8080:passthrough', '8443:tls') },
  { kind: 'leading ## (tooling appends to an empty value)', env: { [CI]: '##admin#9901#true' }, contrast: ing('9901:passthrough'), ours: ing('9901:passthrough') },
  { kind: 'trailing ##', env: { [CI]: 'a#1#true##' }, contrast: ing('1:passthrough'), ours: ing('1:passthrough') },
  { kind: 'empty entry in the middle', env: { [CI]: 'a#1#true####b#2#false' }, contrast: ing('1:passthrough', '2:tls'), ours: ing('1:passthrough', '2:tls') },
  { kind: 'only separators', env: { [CI]: '####' }, contrast: mtls(), ours: mtls() },
  ...['1', 't', 'T', 'TRUE', 'true', 'True'].map((f): Case => ({ kind: `flag ${f}`, env: { [CI]: `w#80#${f}` }, contrast: ing('80:passthrough'), ours: ing('80:passthrough') })),
  ...['0', 'f', 'F', 'FALSE', 'false', 'False'].map((f): Case => ({ kind: `flag ${f}`, env: { [CI]: `w#80#${f}` }, contrast: ing('80:tls'), ours: ing('80:tls') })),
  { kind: 'flag yes', env: { [CI]: 'w#80#yes' }, contrast: REFUSED, ours: no('INVALID_BOOLEAN') },
  { kind: 'flag tRuE', env: { [CI]: 'w#80#tRuE' }, contrast: REFUSED, ours: no('INVALID_BOOLEAN') },
  { kind: 'flag with a blank', env: { [CI]: 'w#80# true' }, contrast: REFUSED, ours: no('INVALID_BOOLEAN') },
  { kind: 'empty name', env: { [CI]: '#80#true' }, contrast: ing('80:passthrough'), ours: ing('80:passthrough') },
  { kind: 'name with blanks', env: { [CI]: 'my web app#80#false' }, contrast: ing('80:tls'), ours: ing('80:tls') },
  { kind: 'name with quotes and semicolons', env: { [CI]: '"x"; drop;\n#80#true' }, contrast: ing('80:passthrough'), ours: ing('80:passthrough') },
  { kind: 'port +8080', env: { [CI]: 'w#+8080#true' }, contrast: ing('8080:passthrough'), ours: ing('8080:passthrough') },
  { kind: 'port 08080', env: { [CI]: 'w#08080#true' }, contrast: ing('8080:passthrough'), ours: ing('8080:passthrough') },
  {
    kind: 'port 0',
    env: { [CI]: 'w#0#true' },
    contrast: ing('0:passthrough'),
    ours: no('PORT_OUT_OF_RANGE'),
    why: 'a rule for port 0 never matches: whatever the author meant is not what happens',
  },
  {
    kind: 'port 65536',
    env: { [CI]: 'w#65536#true' },
    contrast: ing('0:passthrough'),
    ours: no('PORT_OUT_OF_RANGE'),
    why: 'Contrast wraps it to 0 (uint16)',
  },
  {
    kind: 'port 70000',
    env: { [CI]: 'w#70000#true' },
    contrast: ing('4464:passthrough'),
    ours: no('PORT_OUT_OF_RANGE'),
    why: 'Contrast wraps it to 4464 and lets an unnamed port through in plaintext',
  },
  {
    kind: 'port -1',
    env: { [CI]: 'w#-1#true' },
    contrast: ing('65535:passthrough'),
    ours: no('PORT_OUT_OF_RANGE'),
    why: 'Contrast wraps it to 65535 and lets that port through in plaintext',
  },
  { kind: 'port 80a', env: { [CI]: 'w#80a#true' }, contrast: REFUSED, ours: no('PORT_NOT_NUMERIC') },
  { kind: 'port blank', env: { [CI]: 'w# #true' }, contrast: REFUSED, ours: no('PORT_NOT_NUMERIC') },
  { kind: 'same rule twice', env: { [CI]: 'a#80#true##b#80#true' }, contrast: ing('80:passthrough'), ours: ing('80:passthrough') },
  {
    kind: 'one port, #false and #true',
    env: { [CI]: 'a#80#false##b#80#true' },
    contrast: ing('80:passthrough'),
    ours: no('DUPLICATE_INGRESS_PORT'),
    why: "Contrast's #true rule comes first and silently wins: the port the author wanted encrypted is plaintext",
  },
  { kind: 'two fields', env: { [CI]: 'a#80' }, contrast: REFUSED, ours: no('WRONG_FIELD_COUNT') },
  { kind: 'four fields', env: { [CI]: 'a#80#true#x' }, contrast: REFUSED, ours: no('WRONG_FIELD_COUNT') },
  {
    kind: 'a rule for the proxy port 15006',
    env: { [CI]: 'a#15006#true' },
    contrast: ing('15006:passthrough'),
    ours: no('PORT_RESERVED'),
    why: "15006 is the mesh's own listener; a rule for it can only mean a mistake",
  },
  // --- egress
  { kind: 'egress unset', env: {}, contrast: mtls(), ours: mtls() },
  { kind: 'egress empty', env: { [CE]: '' }, contrast: mtls(), ours: mtls() },
  {
    kind: "emojivoto's web egress",
    env: { [CE]: EMOJI_EGRESS },
    contrast: eg('127.137.0.1:8081 -> emoji-svc:8080', '127.137.0.2:8081 -> voting-svc:8080'),
    ours: eg('127.137.0.1:8081 -> emoji-svc:8080', '127.137.0.2:8081 -> voting-svc:8080'),
  },
  { kind: 'egress trailing ##', env: { [CE]: 'db#127.0.0.1:5432#db:5432##' }, contrast: eg('127.0.0.1:5432 -> db:5432'), ours: eg('127.0.0.1:5432 -> db:5432') },
  {
    kind: 'egress host with a trailing dot (absolute FQDN)',
    env: { [CE]: 'db#127.0.0.1:5432#db.ns.svc.cluster.local.:5432' },
    contrast: eg('127.0.0.1:5432 -> db.ns.svc.cluster.local.:5432'),
    ours: eg('127.0.0.1:5432 -> db.ns.svc.cluster.local.:5432'),
  },
  { kind: 'egress IPv6 remote in brackets', env: { [CE]: 'a#127.0.0.1:80#[fd00::1]:80' }, contrast: eg('127.0.0.1:80 -> [fd00::1]:80'), ours: eg('127.0.0.1:80 -> [fd00::1]:80') },
  { kind: 'egress remote port +80', env: { [CE]: 'a#127.0.0.1:80#b:+80' }, contrast: eg('127.0.0.1:80 -> b:80'), ours: eg('127.0.0.1:80 -> b:80') },
  { kind: 'listen outside 127/8', env: { [CE]: 'a#10.0.0.1:80#b:80' }, contrast: REFUSED, ours: no('LISTEN_NOT_LOCAL') },
  { kind: 'listen on ::1', env: { [CE]: 'a#[::1]:80#b:80' }, contrast: REFUSED, ours: no('LISTEN_NOT_LOCAL') },
  { kind: 'listen on a name', env: { [CE]: 'a#localhost:80#b:80' }, contrast: REFUSED, ours: no('LISTEN_ADDRESS_INVALID') },
  { kind: 'listen with a leading-zero octet', env: { [CE]: 'a#127.000.0.1:80#b:80' }, contrast: REFUSED, ours: no('LISTEN_ADDRESS_INVALID') },
  { kind: 'listen without port', env: { [CE]: 'a#127.0.0.1#b:80' }, contrast: REFUSED, ours: no('MISSING_PORT') },
  { kind: 'remote without port', env: { [CE]: 'a#127.0.0.1:80#b' }, contrast: REFUSED, ours: no('MISSING_PORT') },
  { kind: 'listen port 70000', env: { [CE]: 'a#127.0.0.1:70000#b:80' }, contrast: REFUSED, ours: no('PORT_OUT_OF_RANGE') },
  {
    kind: 'listen port 0',
    env: { [CE]: 'a#127.0.0.1:0#b:80' },
    contrast: eg('127.0.0.1:0 -> b:80'),
    ours: no('PORT_OUT_OF_RANGE'),
    why: 'Contrast listens on a port the kernel picks, which the application cannot know',
  },
  {
    kind: 'remote port 70000',
    env: { [CE]: 'a#127.0.0.1:80#b:70000' },
    contrast: eg('127.0.0.1:80 -> b:4464'),
    ours: no('PORT_OUT_OF_RANGE'),
    why: 'Contrast wraps it to 4464 and connects to a port nobody named',
  },
  { kind: 'egress two fields', env: { [CE]: 'a#127.0.0.1:80' }, contrast: REFUSED, ours: no('WRONG_FIELD_COUNT') },
  {
    kind: 'remote host with an underscore',
    env: { [CE]: 'a#127.0.0.1:80#bad_host:80' },
    contrast: eg('127.0.0.1:80 -> bad_host:80'),
    ours: no('INVALID_HOST'),
    why: 'secure naming matches the host against DNS SANs, and this is not a DNS name (nor a Kubernetes Service name)',
  },
  { kind: 'egress name with a blank', env: { [CE]: 'my db#127.0.0.1:80#db:80' }, contrast: eg('127.0.0.1:80 -> db:80'), ours: eg('127.0.0.1:80 -> db:80') },
  {
    kind: 'egress name used twice',
    env: { [CE]: 'a#127.0.0.1:80#b:80##a#127.0.0.2:80#c:80' },
    contrast: eg('127.0.0.1:80 -> b:80', '127.0.0.2:80 -> c:80'),
    ours: eg('127.0.0.1:80 -> b:80', '127.0.0.2:80 -> c:80'),
  },
  { kind: 'same listen address twice', env: { [CE]: 'a#127.0.0.2:80#b:80##c#127.0.0.2:80#d:80' }, contrast: REFUSED, ours: no('DUPLICATE_LISTEN') },
  // --- admin port
  { kind: 'admin port empty', env: { [CA]: '' }, contrast: mtls(), ours: mtls() },
  { kind: 'admin port text', env: { [CA]: 'abc' }, contrast: REFUSED, ours: no('PORT_NOT_NUMERIC') },
  {
    kind: 'admin port 0',
    env: { [CA]: '0' },
    contrast: mtls(),
    ours: no('PORT_OUT_OF_RANGE'),
    why: 'Contrast silently runs without an admin interface; an explicit 0 is more likely a mistake than a wish',
  },
  { kind: 'admin port 70000', env: { [CA]: '70000' }, contrast: REFUSED, ours: no('PORT_OUT_OF_RANGE') },
  { kind: "admin port on the proxy's 15006", env: { [CA]: '15006' }, contrast: REFUSED, ours: no('ADMIN_PORT_RESERVED') },
  { kind: 'admin port alone: reached through the mesh', env: { [CA]: '9901' }, contrast: mtls('9901 via mtls'), ours: mtls('9901 via mtls') },
  {
    kind: "admin port with the tooling's ##admin#P#true",
    env: { [CA]: '9901', [CI]: '##admin#9901#true' },
    contrast: { ingress: ['9901:passthrough'], egress: [], admin: '9901 via plaintext' },
    ours: { ingress: ['9901:passthrough'], egress: [], admin: '9901 via plaintext' },
  },
  {
    kind: 'admin port with #false',
    env: { [CA]: '9901', [CI]: 'admin#9901#false' },
    contrast: { ingress: ['9901:tls'], egress: [], admin: '9901 via tls' },
    ours: { ingress: ['9901:tls'], egress: [], admin: '9901 via tls' },
  },
]

/** How a connection to `port` from outside the pod is treated by the rendered ruleset. */
function pathOf(config: MeshConfig, port: number): 'mtls' | 'tls' | 'plaintext' {
  if (!config.ingress.enabled) return 'plaintext'
  const line = renderFinal(config)
    .nft.split('\n')
    .find((l) => new RegExp(`tcp dport ${port}\\b`).test(l))
  if (line === undefined) return 'mtls'
  if (line.includes('tproxy to :15007')) return 'tls'
  if (line.includes('accept') && !line.includes('tproxy')) return 'plaintext'
  return 'mtls'
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

function ours(env: NodeJS.ProcessEnv): Ours {
  let config: MeshConfig
  try {
    config = meshConfigFromEnv(env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return { refused: err.issues[0]?.reason as ConfigReason }
  }
  const summary: Summary = {
    ingress: config.ingress.enabled ? config.ingress.rules.map((r) => `${r.port}:${r.mode === 'tls' ? 'tls' : 'passthrough'}`) : 'disabled',
    egress: config.egress.map(
      (e) => `${e.listen.address}:${e.listen.port} -> ${hostPort(e.remote.absolute === true ? `${e.remote.host}.` : e.remote.host, e.remote.port)}`,
    ),
  }
  return config.admin.exposed ? { ...summary, admin: `${config.admin.port} via ${pathOf(config, config.admin.port)}` } : summary
}

function agrees(contrast: Outcome, actual: Ours): boolean {
  if ('refused' in contrast || 'refused' in actual) return 'refused' in contrast && 'refused' in actual
  return JSON.stringify(contrast) === JSON.stringify(actual)
}

const tally = { agree: 0, total: 0 }

describe("Contrast's configuration cases", () => {
  it.each(CASES.map((c) => [c.kind, c] as const))('%s', (_kind, c) => {
    const actual = ours(c.env)
    tally.total++
    if (agrees(c.contrast, actual)) tally.agree++
    expect(actual).toEqual(c.ours)
    // Every difference is deliberate and explained; every explanation is for a real difference.
    expect(c.why !== undefined).toBe(!agrees(c.contrast, c.ours))
  })

  it('covers at least the 55 kinds the review counted', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(55)
    expect(new Set(CASES.map((c) => c.kind)).size).toBe(CASES.length)
  })

  afterAll(() => {
    console.log(`contrast cases: ${tally.agree} of ${tally.total} agree with Contrast`)
  })
})
