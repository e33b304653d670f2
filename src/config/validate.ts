// Raw form → MeshConfig. All semantic checks live here, whatever the input syntax.

import {
  compareIp,
  formatCidr,
  formatIp,
  hostText,
  isLoopbackV4,
  parseCidr,
  parseHost,
  parseIp,
  splitHostPort,
  type IpAddress,
} from './address.js'
import { configInvalid, type ConfigIssue, type ConfigReason } from './errors.js'
import type { Origin, RawField, RawMeshConfig } from './raw.js'
import {
  DEFAULT_ADMIN_PORT,
  MESH_PORTS,
  type AdminConfig,
  type EgressRule,
  type IngressRule,
  type MeshConfig,
  type PlaintextDestination,
  type Port,
} from './types.js'

const MAX_PORT = 65535

/** What Contrast does with a port number it accepts syntactically but that is not 1..65535. */
type ContrastPortFate = (n: bigint) => string

const INT64_MAX = 2n ** 63n - 1n
/** Contrast reads the port with strconv.Atoi and casts it to uint16 (ingress and remote ports). */
const wraps: ContrastPortFate = (n) => {
  if (n > INT64_MAX || n < -INT64_MAX - 1n) return 'Contrast refuses it too (out of range for Atoi)'
  const wrapped = ((n % 65536n) + 65536n) % 65536n
  return wrapped === 0n
    ? 'Contrast would silently use port 0, a rule that never matches'
    : `Contrast would silently use port ${wrapped} (uint16 wrap-around)`
}
/** Listen ports go through netip.ParseAddrPort: 0 is accepted (Envoy then binds any port), the rest refused. */
const listenFate: ContrastPortFate = (n) => (n === 0n ? 'Contrast would listen on a port the kernel picks' : 'Contrast refuses it too')
/** The admin port: Atoi, then uint32; 0 means "no admin interface", larger values fail Envoy's validation. */
const adminFate: ContrastPortFate = (n) =>
  n === 0n ? 'Contrast would run without an admin interface' : "Contrast refuses it too (Envoy's config validation)"

/** Mints a Port from a number known to be valid; throws ConfigError otherwise. */
export function toPort(n: number, source = 'port'): Port {
  const issues: ConfigIssue[] = []
  const port = new Checker(issues).port({ value: n, at: { source, entry: String(n) } }, 'port')
  if (port === undefined) throw configInvalid(issues)
  return port
}

const MESH_PORT_NAMES = new Map<number, string>([
  [MESH_PORTS.ingressMtls, 'ingress mTLS'],
  [MESH_PORTS.ingressTls, 'ingress TLS'],
  [MESH_PORTS.egressCapture, 'egress capture'],
])

class Checker {
  readonly issues: ConfigIssue[]
  constructor(issues: ConfigIssue[]) {
    this.issues = issues
  }

  add(at: Origin, reason: ConfigReason, message: string): void {
    this.issues.push({ ...at, reason, message })
  }

  /**
   * Text is read as Go's strconv.Atoi reads it (optional sign, leading zeros), the
   * syntax Contrast accepts. Contrast then casts to uint16, so 0, negative and too large
   * ports silently become another port there; here they are refused, and `contrast`
   * says what Contrast would have done instead.
   */
  port(field: RawField<string | number>, what: string, contrast?: ContrastPortFate): Port | undefined {
    const v = field.value
    let n: bigint
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) {
        this.add(field.at, 'PORT_NOT_NUMERIC', `${what} ${v} is not an integer`)
        return undefined
      }
      n = BigInt(v)
    } else {
      if (!/^[+-]?[0-9]+$/.test(v)) {
        this.add(field.at, 'PORT_NOT_NUMERIC', `${what} "${v}" is not a decimal number`)
        return undefined
      }
      n = BigInt(v)
    }
    if (n < 1n || n > BigInt(MAX_PORT)) {
      const shown = typeof v === 'string' ? v : String(v)
      this.add(field.at, 'PORT_OUT_OF_RANGE', `${what} ${shown} is not 1..${MAX_PORT}${contrast !== undefined ? `; ${contrast(n)}` : ''}`)
      return undefined
    }
    return Number(n) as Port
  }

  /**
   * Egress names are any non-empty text, as in Contrast, and may repeat; where a name
   * becomes an identifier (listener, Envoy resource and stat names, metric labels) the
   * data-plane spec makes a safe and unique one from it.
   */
  name(field: RawField<string>): string | undefined {
    if (field.value === '') {
      this.add(field.at, 'INVALID_NAME', 'name is empty')
      return undefined
    }
    return field.value
  }
}

function admin(c: Checker, raw: RawMeshConfig): AdminConfig | undefined {
  if (raw.admin === undefined) return { port: DEFAULT_ADMIN_PORT, exposed: false }
  const port = c.port(raw.admin.port, 'admin port', adminFate)
  if (port === undefined) return undefined
  const mesh = MESH_PORT_NAMES.get(port)
  if (mesh !== undefined) {
    c.add(raw.admin.port.at, 'ADMIN_PORT_RESERVED', `admin port ${port} is the mesh's ${mesh} port`)
    return undefined
  }
  return { port, exposed: true }
}

function ingressRules(c: Checker, raw: RawMeshConfig, adminCfg: AdminConfig | undefined): IngressRule[] {
  const ing = raw.ingress
  if (ing === undefined) return []
  if (ing.disabled && ing.entries.length > 0) {
    c.add(ing.at, 'INGRESS_DISABLED_WITH_PORTS', 'ingress is disabled but has port exceptions; remove one or the other')
  }
  const rules: IngressRule[] = []
  const seen = new Map<number, { index: number | undefined; mode: IngressRule['mode'] }>()
  for (const e of ing.entries) {
    // The name is informational, any text (as in Contrast); where it is shown (nft
    // comments, logs) it is sanitised there.
    const name = e.name.value
    const port = c.port(e.port, 'ingress port', wraps)
    if (port === undefined || e.mode === undefined) continue
    const mode = e.mode.value
    const mesh = MESH_PORT_NAMES.get(port)
    if (mesh !== undefined) {
      c.add(e.port.at, 'PORT_RESERVED', `ingress port ${port} is the mesh's ${mesh} port (in Contrast, its proxy's own listener)`)
      continue
    }
    // An exposed admin port is an ordinary port: reached through the mesh unless an
    // entry says otherwise (Contrast's tooling adds `admin#P#true`). The loopback-only
    // default is the mesh's own.
    if (adminCfg !== undefined && !adminCfg.exposed && port === adminCfg.port) {
      c.add(e.port.at, 'PORT_RESERVED', `ingress port ${port} is the mesh's loopback health port`)
      continue
    }
    const first = seen.get(port)
    if (first !== undefined) {
      // The same rule twice is what Contrast's tooling writes when it appends
      // `##admin#P#true` to a value that has it already: one rule. Two different rules
      // for one port are refused: Contrast's `#true` rule comes first in its chain and
      // wins, so the port would silently be plaintext.
      if (first.mode !== mode) {
        c.add(
          e.port.at,
          'DUPLICATE_INGRESS_PORT',
          `ingress port ${port} already has a ${first.mode === 'passthrough' ? '#true' : '#false'} rule${first.index !== undefined ? ` (entry ${first.index})` : ''}; ` +
            'Contrast would apply its #true rule (plaintext, not redirected) and ignore the other',
        )
      }
      continue
    }
    seen.set(port, { index: e.at.index, mode })
    rules.push({ name, port, mode })
  }
  return rules.sort((a, b) => a.port - b.port)
}

interface SortableEgress {
  readonly rule: EgressRule
  readonly ip: IpAddress
}

function egressRules(c: Checker, raw: RawMeshConfig, adminCfg: AdminConfig | undefined): EgressRule[] {
  const out: SortableEgress[] = []
  const listens = new Map<string, number | undefined>()
  const caOnly = new Map((raw.egressMeshCaOnly ?? []).map((f) => [f.value, f] as const))
  const caOnlyUsed = new Set<string>()
  for (const e of raw.egress) {
    const name = c.name(e.name)

    let listen: { address: string; ip: IpAddress; port: Port } | undefined
    const ls = splitHostPort(e.listen.value)
    if (!ls.ok) c.add(e.listen.at, ls.missingPort ? 'MISSING_PORT' : 'LISTEN_ADDRESS_INVALID', `listen: ${ls.message}`)
    else {
      const ip = parseIp(ls.value.host)
      const port = c.port({ value: ls.value.port, at: e.listen.at }, 'listen port', listenFate)
      if (ip === undefined) {
        c.add(e.listen.at, 'LISTEN_ADDRESS_INVALID', `listen address "${ls.value.host}" is not an IPv4 address`)
      } else if (!isLoopbackV4(ip)) {
        c.add(e.listen.at, 'LISTEN_NOT_LOCAL', `listen address ${formatIp(ip)} is not in local CIDR 127.0.0.0/8`)
      } else if (port !== undefined) {
        const address = formatIp(ip)
        const mesh = MESH_PORT_NAMES.get(port)
        if (mesh !== undefined) {
          c.add(e.listen.at, 'LISTEN_PORT_RESERVED', `listen port ${port} is the mesh's ${mesh} port, bound on all addresses`)
        } else if (adminCfg !== undefined && port === adminCfg.port && (adminCfg.exposed || address === '127.0.0.1')) {
          c.add(
            e.listen.at,
            'LISTEN_PORT_RESERVED',
            `listen ${address}:${port} collides with the admin listener on ${adminCfg.exposed ? 'all addresses' : '127.0.0.1'}:${port}`,
          )
        } else if (listens.has(`${address}:${port}`)) {
          c.add(e.listen.at, 'DUPLICATE_LISTEN', `listen ${address}:${port} is used twice (first: entry ${listens.get(`${address}:${port}`)})`)
        } else {
          listens.set(`${address}:${port}`, e.at.index)
          listen = { address, ip, port }
        }
      }
    }

    let remote: EgressRule['remote'] | undefined
    const rs = splitHostPort(e.remote.value)
    if (!rs.ok) c.add(e.remote.at, rs.missingPort ? 'MISSING_PORT' : 'INVALID_HOST', `remote: ${rs.message}`)
    else {
      // `emoji-svc.default.svc.cluster.local.` (absolute): resolved as written, with the
      // dot, so no search domain is appended; matched against SANs without it.
      const absolute = !rs.value.bracketed && rs.value.host.length > 1 && rs.value.host.endsWith('.') && !rs.value.host.endsWith('..')
      const host = parseHost(absolute ? rs.value.host.slice(0, -1) : rs.value.host, rs.value.bracketed)
      const port = c.port({ value: rs.value.port, at: e.remote.at }, 'remote port', wraps)
      if (!host.ok) c.add(e.remote.at, 'INVALID_HOST', `remote host: ${host.message}`)
      else if (absolute && host.value.kind !== 'dns') c.add(e.remote.at, 'INVALID_HOST', `remote host "${rs.value.host}": an IP address has no trailing dot`)
      else if (host.value.kind === 'ip' && isV4Mapped(host.value.ip)) {
        // A certificate's IP SAN for that peer holds the 4-byte address: a mapped
        // name could never match it, and the connection would go out over IPv4 anyway.
        const v4 = formatIp({ family: 4, bytes: host.value.ip.bytes.slice(12) })
        c.add(e.remote.at, 'INVALID_HOST', `remote host "${rs.value.host}" is an IPv4-mapped IPv6 address; write ${v4}`)
      } else if (port !== undefined) remote = absolute ? { host: hostText(host.value), port, absolute: true } : { host: hostText(host.value), port }
    }

    const byList = name !== undefined && caOnly.has(name)
    if (byList) caOnlyUsed.add(name)
    if (name !== undefined && listen !== undefined && remote !== undefined) {
      const rule: EgressRule = { name, listen: { address: listen.address, port: listen.port }, remote }
      out.push({ rule: byList || e.meshCaOnly?.value === true ? { ...rule, meshCaOnly: true } : rule, ip: listen.ip })
    }
  }
  for (const [n, f] of caOnly) {
    if (!caOnlyUsed.has(n)) c.add(f.at, 'UNKNOWN_EGRESS_NAME', `"${n}" names no egress entry`)
  }
  return out.sort((a, b) => compareIp(a.ip, b.ip) || a.rule.listen.port - b.rule.listen.port).map((s) => s.rule)
}

function plaintextDestinations(c: Checker, raw: RawMeshConfig): { enabled: boolean; allow: PlaintextDestination[] } {
  const te = raw.transparentEgress
  if (te === undefined) return { enabled: false, allow: [] }
  const enabled = te.enabled?.value
  // An invalid opt-in value was already reported; do not pile a second issue on it.
  const optInInvalid = te.enabled !== undefined && enabled === undefined
  if (te.allowPlaintext.length > 0 && enabled !== true && !optInInvalid) {
    c.add(
      te.allowAt,
      'ALLOW_LIST_WITHOUT_OPT_IN',
      'a plaintext allow-list only means something with transparent egress enabled',
    )
  }
  const parsed: { dest: PlaintextDestination; ip: IpAddress; prefix: number }[] = []
  for (const f of te.allowPlaintext) {
    let cidrText = f.value
    let portText: string | undefined
    if (f.value.startsWith('[')) {
      const close = f.value.indexOf(']')
      const rest = close < 0 ? '' : f.value.slice(close + 1)
      if (close < 0 || (rest !== '' && !rest.startsWith(':'))) {
        c.add(f.at, 'INVALID_CIDR', `"${f.value}" is not [CIDR] or [CIDR]:port`)
        continue
      }
      cidrText = f.value.slice(1, close)
      if (rest !== '') portText = rest.slice(1)
    } else {
      const colons = f.value.split(':').length - 1
      // One colon can only be IPv4:port; several are an unbracketed IPv6 CIDR without port.
      if (colons === 1) {
        const i = f.value.indexOf(':')
        cidrText = f.value.slice(0, i)
        portText = f.value.slice(i + 1)
      }
    }
    const cidr = parseCidr(cidrText)
    const port = portText === undefined ? undefined : c.port({ value: portText, at: f.at }, 'allow-list port')
    if (!cidr.ok) {
      c.add(f.at, cidr.hostBits ? 'CIDR_HOST_BITS_SET' : 'INVALID_CIDR', cidr.message)
      continue
    }
    if (portText !== undefined && port === undefined) continue
    const dest: PlaintextDestination =
      port === undefined
        ? { cidr: formatCidr(cidr.value), family: cidr.value.ip.family }
        : { cidr: formatCidr(cidr.value), family: cidr.value.ip.family, port }
    parsed.push({ dest, ip: cidr.value.ip, prefix: cidr.value.prefix })
  }
  parsed.sort(
    (a, b) =>
      compareIp(a.ip, b.ip) || a.prefix - b.prefix || (a.dest.port ?? 0) - (b.dest.port ?? 0),
  )
  // Exact repeats are harmless; keep one so the ruleset has no duplicate rules.
  const allow = parsed
    .filter((p, i) => i === 0 || p.dest.cidr !== parsed[i - 1]?.dest.cidr || p.dest.port !== parsed[i - 1]?.dest.port)
    .map((p) => p.dest)
  return { enabled: enabled === true, allow }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

/**
 * Judges a raw config. `issues` already holds the syntax issues of the same input;
 * everything found here is added, and any issue at all throws one ConfigError.
 */
export function validateRaw(raw: RawMeshConfig, issues: ConfigIssue[] = []): MeshConfig {
  const c = new Checker(issues)
  const adminCfg = admin(c, raw)
  const rules = ingressRules(c, raw, adminCfg)
  const egress = egressRules(c, raw, adminCfg)
  const te = plaintextDestinations(c, raw)
  if (c.issues.length > 0 || adminCfg === undefined) throw configInvalid(c.issues)
  const disabled = raw.ingress?.disabled === true
  return deepFreeze({
    ingress: { enabled: !disabled, rules: disabled ? [] : rules },
    egress,
    transparentEgress: { enabled: te.enabled, allowPlaintext: te.allow },
    admin: adminCfg,
  })
}

/** `::ffff:a.b.c.d` (RFC 4291 2.5.5.2). */
function isV4Mapped(ip: IpAddress): boolean {
  return ip.family === 6 && ip.bytes.slice(0, 10).every((b) => b === 0) && ip.bytes[10] === 0xff && ip.bytes[11] === 0xff
}
