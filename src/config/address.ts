// Address syntax for the mesh config: IPv4/IPv6 literals, DNS names, host:port,
// CIDRs. Hand-written rather than net.isIP so that every form has exactly one
// canonical spelling (no leading zeros, RFC 5952 IPv6), which the netfilter ruleset,
// the data plane and SAN matching all compare against.

export type Family = 4 | 6

export interface IpAddress {
  readonly family: Family
  /** 4 or 16 bytes, network order. */
  readonly bytes: Uint8Array
}

type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly message: string }

const ok = <T>(value: T): Result<T> => ({ ok: true, value })
const fail = <T>(message: string): Result<T> => ({ ok: false, message })

export type SplitResult =
  | { readonly ok: true; readonly value: HostPort }
  | { readonly ok: false; readonly missingPort: boolean; readonly message: string }

const DECIMAL_OCTET = /^(0|[1-9][0-9]{0,2})$/

export function parseIPv4(text: string): IpAddress | undefined {
  const parts = text.split('.')
  if (parts.length !== 4) return undefined
  const bytes = new Uint8Array(4)
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string
    // Leading zeros are refused: inet_aton reads them as octal.
    if (!DECIMAL_OCTET.test(p)) return undefined
    const n = Number(p)
    if (n > 255) return undefined
    bytes[i] = n
  }
  return { family: 4, bytes }
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/

export function parseIPv6(text: string): IpAddress | undefined {
  // Zone ids (`fe80::1%eth0`) have no meaning in a pod-wide config.
  if (text.length < 2 || text.length > 45 || text.includes('%')) return undefined
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const groupsOf = (s: string): number[] | undefined => {
    if (s === '') return []
    const out: number[] = []
    const parts = s.split(':')
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] as string
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIPv4(p)
        if (v4 === undefined) return undefined
        const b = v4.bytes
        out.push(((b[0] as number) << 8) | (b[1] as number), ((b[2] as number) << 8) | (b[3] as number))
      } else {
        if (!HEX_GROUP.test(p)) return undefined
        out.push(parseInt(p, 16))
      }
    }
    return out
  }
  const head = groupsOf(halves[0] as string)
  const tail = halves.length === 2 ? groupsOf(halves[1] as string) : []
  if (head === undefined || tail === undefined) return undefined
  let groups: number[]
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length
    if (missing < 1) return undefined
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail]
  } else {
    groups = head
  }
  if (groups.length !== 8) return undefined
  const bytes = new Uint8Array(16)
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8
    bytes[2 * i + 1] = g & 0xff
  })
  return { family: 6, bytes }
}

export function parseIp(text: string): IpAddress | undefined {
  return text.includes(':') ? parseIPv6(text) : parseIPv4(text)
}

/** Dotted quad, or RFC 5952: lowercase, no leading zeros, longest zero run (first on a tie, ≥ 2 groups) as `::`. */
export function formatIp(ip: IpAddress): string {
  const b = ip.bytes
  if (ip.family === 4) return Array.from(b).join('.')
  const groups: number[] = []
  for (let i = 0; i < 8; i++) groups.push(((b[2 * i] as number) << 8) | (b[2 * i + 1] as number))
  let bestStart = -1
  let bestLen = 0
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestLen < 2) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}

export function compareIp(a: IpAddress, b: IpAddress): number {
  if (a.family !== b.family) return a.family - b.family
  for (let i = 0; i < a.bytes.length; i++) {
    const d = (a.bytes[i] as number) - (b.bytes[i] as number)
    if (d !== 0) return d
  }
  return 0
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

/** RFC 1123 host name, lowercased. No trailing dot: it must compare equal to a certificate SAN. */
export function parseDnsName(text: string): string | undefined {
  if (text.length === 0 || text.length > 253) return undefined
  const name = text.toLowerCase()
  const labels = name.split('.')
  if (!labels.every((l) => DNS_LABEL.test(l))) return undefined
  // All-numeric names look like (malformed) IPv4 literals; resolvers disagree on them.
  if (/^[0-9.]+$/.test(name)) return undefined
  return name
}

export type Host = { readonly kind: 'dns'; readonly name: string } | { readonly kind: 'ip'; readonly ip: IpAddress }

export function hostText(host: Host): string {
  return host.kind === 'dns' ? host.name : formatIp(host.ip)
}

export interface HostPort {
  readonly host: string
  /** Still text: ports are checked by the caller so that port reasons stay uniform. */
  readonly port: string
  readonly bracketed: boolean
}

/** Splits `host:port` / `[v6]:port`; says nothing about whether host or port are valid. */
export function splitHostPort(text: string): SplitResult {
  const bad = (missingPort: boolean, message: string): SplitResult => ({ ok: false, missingPort, message })
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) return bad(false, `"${text}" has "[" without "]"`)
    const rest = text.slice(close + 1)
    if (rest === '') return bad(true, `"${text}" has no ":port"`)
    if (!rest.startsWith(':')) return bad(false, `"${text}" has text after "]" that is not ":port"`)
    return { ok: true, value: { host: text.slice(1, close), port: rest.slice(1), bracketed: true } }
  }
  const colon = text.lastIndexOf(':')
  if (colon < 0) return bad(true, `"${text}" has no ":port"`)
  return { ok: true, value: { host: text.slice(0, colon), port: text.slice(colon + 1), bracketed: false } }
}

/** A DNS name, an IPv4 literal, or an IPv6 literal that was written in brackets. */
export function parseHost(text: string, bracketed: boolean): Result<Host> {
  if (bracketed) {
    const v6 = parseIPv6(text)
    return v6 !== undefined ? ok({ kind: 'ip', ip: v6 }) : fail(`"${text}" in brackets is not an IPv6 address`)
  }
  if (text.includes(':')) return fail(`IPv6 address "${text}" must be written in brackets, e.g. [${text}]:port`)
  const v4 = parseIPv4(text)
  if (v4 !== undefined) return ok({ kind: 'ip', ip: v4 })
  const dns = parseDnsName(text)
  if (dns !== undefined) return ok({ kind: 'dns', name: dns })
  return fail(`"${text}" is neither an RFC 1123 host name nor an IP address`)
}

export interface Cidr {
  readonly ip: IpAddress
  readonly prefix: number
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.ip)}/${c.prefix}`
}

export type CidrResult =
  | { readonly ok: true; readonly value: Cidr }
  | { readonly ok: false; readonly hostBits: boolean; readonly message: string }

/** `a.b.c.d/n`, `v6/n`, or a bare address (= /32, /128). Host bits must be zero. */
export function parseCidr(text: string): CidrResult {
  const slash = text.indexOf('/')
  const addr = slash < 0 ? text : text.slice(0, slash)
  const ip = parseIp(addr)
  if (ip === undefined) return { ok: false, hostBits: false, message: `"${addr}" is not an IP address` }
  const max = ip.family === 4 ? 32 : 128
  let prefix = max
  if (slash >= 0) {
    const p = text.slice(slash + 1)
    if (!/^[0-9]{1,3}$/.test(p) || Number(p) > max) {
      return { ok: false, hostBits: false, message: `prefix length "${p}" is not 0..${max}` }
    }
    prefix = Number(p)
  }
  for (let bit = prefix; bit < max; bit++) {
    if (((ip.bytes[bit >> 3] as number) >> (7 - (bit & 7))) & 1) {
      const masked = new Uint8Array(ip.bytes)
      for (let b = prefix; b < max; b++) masked[b >> 3] = (masked[b >> 3] as number) & ~(1 << (7 - (b & 7)))
      const suggestion = formatCidr({ ip: { family: ip.family, bytes: masked }, prefix })
      return { ok: false, hostBits: true, message: `"${text}" has host bits set; did you mean ${suggestion}?` }
    }
  }
  return { ok: true, value: { ip, prefix } }
}

export function isLoopbackV4(ip: IpAddress): boolean {
  return ip.family === 4 && ip.bytes[0] === 127
}
