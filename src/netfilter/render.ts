// The nftables ruleset and the policy routing of the pod, rendered from a MeshConfig.
// Pure: no I/O, no clock, no env; the same config always gives the same bytes.
//
// One `inet` table (IPv4 and IPv6 in one transaction) with the same skeleton for the
// boot-time baseline and the final ruleset, so replacing one by the other is one atomic
// `nft -f`: `add table` + `delete table` + `table { ... }` in one file makes the script
// idempotent (the `add` makes the `delete` succeed on a fresh kernel).
//
// Kernel facts this layout relies on (each checked in a network namespace, kernel 6.x,
// nft 1.0.6):
// - an nft `tproxy` statement that finds no (transparent) listener does not drop: the
//   rule just stops matching and the packet goes on to the app in plaintext. So every
//   tproxy rule is followed, in the same chain, by an explicit TCP drop.
// - `tproxy to :PORT` (no address) works in the inet family for IPv4 and IPv6 when the
//   rule first matches `meta l4proto tcp`; the accepted socket sees the original
//   destination as its local address.
// - ingress needs no routing help: only packets addressed to the pod itself are
//   redirected (`fib daddr type local`), and nothing else is made local. The TPROXY mark
//   is never set on inbound packets: with it, policy routing would deliver a redirected
//   packet for ANY destination to the data plane, which would then relay the decrypted
//   stream to that destination, off the pod. Without it, a redirected packet for a
//   foreign address could not even be delivered (the kernel does not forward a packet
//   that carries a socket).
// - transparent egress does need routing help: the output chain marks the packet, the `type route` chain makes the
//   kernel re-route it, `ip rule fwmark` picks table 150 whose `local default dev lo`
//   loops it back, and it re-enters prerouting on `lo` still carrying the mark, where
//   `tproxy to :15001` hands it to the data plane (established packets of the flow take
//   the same path: tproxy looks up the established socket first).
// - conntrack runs before `priority mangle`, so `ct` matches see the current packet.

import { isIPv4, isIPv6 } from 'node:net'
import {
  MESH_PORTS,
  MESH_SOCKET_MARK,
  TPROXY_MARK,
  TPROXY_ROUTE_TABLE,
  type MeshConfig,
  type PlaintextDestination,
  type Port,
} from '../config/index.js'
import { NetfilterError } from './errors.js'

/** The one table the mesh owns; nothing else in the ruleset is touched. */
export const NFT_TABLE = 'podvm_mesh'
export const NFT_FAMILY = 'inet'

/** Arguments of one `ip` invocation, e.g. `['-4', 'rule', 'add', 'fwmark', '0x50e', 'lookup', '150']`. */
export type RouteCommand = readonly string[]

export interface Ruleset {
  /** An idempotent `nft -f` script: one transaction. */
  readonly nft: string
  /** `ip` invocations to run before the script. */
  readonly routes: readonly RouteCommand[]
}

/** Drop logging is rate-limited so a port scan cannot flood the kernel log. */
const LOG_LIMIT = 'limit rate 10/minute burst 10 packets'

const LOG_PREFIX = {
  egressNoListener: 'podvm-mesh: egress no listener: ',
  ingressNoListener: 'podvm-mesh: ingress no listener: ',
  ingressNonTcp: 'podvm-mesh: inbound non-tcp: ',
  notForThisPod: 'podvm-mesh: not for this pod: ',
  loopbackFromOutside: 'podvm-mesh: loopback from outside: ',
  baseline: 'podvm-mesh: baseline drop: ',
} as const

/** One rule as data; `renderRule` fixes the order of its parts. */
interface Rule {
  readonly match: readonly string[]
  /** Statements before the counter (tproxy, mark set): the counter then counts what they let through. */
  readonly act?: readonly string[]
  readonly log?: string
  readonly verdict?: 'accept' | 'drop'
  readonly comment: string
}

interface Chain {
  readonly name: 'prerouting' | 'output'
  readonly decl: string
  readonly rules: readonly Rule[]
}

const PREROUTING_DECL = 'type filter hook prerouting priority mangle; policy accept;'
// `type route`: changing the mark here makes the kernel route the packet again, which is
// what sends captured egress to the local table.
const OUTPUT_DECL = 'type route hook output priority mangle; policy accept;'

const hex = (n: number): string => `0x${n.toString(16)}`

// --- rules shared by the baseline and the final ruleset -------------------------------

const loopbackAccept: Rule = { match: ['iifname "lo"'], verdict: 'accept', comment: 'loopback' }

// 127.0.0.0/8 is the pod's own, but reached from outside only when `route_localnet` is
// set (a pod sysctl): the kernel's martian check comes after prerouting, and with it on
// there is none. A loopback-only service would then answer the network — in plaintext
// on a passthrough port, or, decrypted by the data plane, behind any other. Only `lo`
// (accepted above) carries these. IPv6 needs no rule: the kernel drops ::1 arriving on
// any other interface before prerouting.
const loopbackFromOutside: Rule[] = logThenDrop(['ip daddr 127.0.0.0/8'], LOG_PREFIX.loopbackFromOutside, 'loopback address from outside')

// Replies only, and only established/related: an inbound connection attempt is never
// "established" from the pod's point of view before the pod answered it.
const repliesAccept: Rule = {
  match: ['ct direction reply', 'ct state established,related'],
  verdict: 'accept',
  comment: 'replies to connections this pod opened',
}

/** A rate-limited log rule followed by the drop itself (a `limit` that is exceeded must not stop the drop). */
function logThenDrop(match: readonly string[], prefix: string, comment: string): Rule[] {
  return [
    { match: [...match, LOG_LIMIT], log: prefix, comment: `${comment} (log)` },
    { match, verdict: 'drop', comment },
  ]
}

// A pod routes nothing. Whatever arrives for an address that is not the pod's own
// (`local`; multicast and broadcast carry neighbour discovery and the like) would be
// forwarded — or, redirected, relayed by the data plane — so it goes no further.
// Replies to the pod's own connections are accepted before this and are addressed to
// the pod anyway.
const notForThisPod: Rule[] = logThenDrop(
  ['fib daddr type != { local, multicast, broadcast }'],
  LOG_PREFIX.notForThisPod,
  'not addressed to this pod',
)

// Packets of connections the data plane already holds. In the baseline too: the drain
// after SIGTERM runs under the baseline, and its connections must keep flowing.
// Not for a bare SYN: a SYN whose 4-tuple is still in TIME-WAIT finds that (transparent)
// socket here, and accepting it would let the kernel hand the SYN — TCP Fast Open data
// included — to the application's own listener. tproxy handles TIME-WAIT itself.
const dataPlaneFlowAccept: Rule = {
  match: ['meta l4proto tcp', 'tcp flags != syn / syn,ack', 'socket transparent 1'],
  verdict: 'accept',
  comment: 'established flow of a data plane socket',
}

/**
 * After `tproxy`: accept only what it handed to a listener. With no listener on the mesh
 * port, tproxy still assigns a TIME-WAIT socket of an earlier data-plane connection on
 * the same 4-tuple (it swaps it for a listener only when one exists); accepting that
 * SYN would let the kernel give it to the application's own listener, in plaintext.
 * `socket wildcard` is defined only for full sockets — a TIME-WAIT or request socket
 * makes the rule not match, and the drop after it takes the packet — and the only full
 * sockets tproxy assigns that are bound to the wildcard address are the data plane's
 * listeners (`::` / `0.0.0.0`).
 */
const DELIVERED_TO_LISTENER = 'socket wildcard 1'

// --- final ruleset -------------------------------------------------------------------

const TCP = 'meta l4proto tcp'
const SET_TPROXY_MARK = `meta mark set ${hex(TPROXY_MARK)}`
/** Redirect only what is addressed to the pod itself (also checked by notForThisPod: belt and braces). */
const LOCAL_DESTINATION = 'fib daddr type local'

function egressCapturePrerouting(): Rule[] {
  const looped = ['iifname "lo"', `meta mark ${hex(TPROXY_MARK)}`, TCP]
  return [
    {
      match: looped,
      act: [`tproxy to :${MESH_PORTS.egressCapture}`],
      verdict: 'accept',
      comment: 'transparent egress to the data plane',
    },
    ...logThenDrop(looped, LOG_PREFIX.egressNoListener, 'egress capture without listener'),
  ]
}

function ingressPrerouting(config: MeshConfig): Rule[] {
  const rules: Rule[] = [
    loopbackAccept,
    ...loopbackFromOutside,
    repliesAccept,
    ...notForThisPod,
    dataPlaneFlowAccept,
    { match: ['meta l4proto { icmp, ipv6-icmp }'], verdict: 'accept', comment: 'ICMP and ICMPv6 (neighbour discovery)' },
  ]
  for (const r of config.ingress.rules) {
    if (r.mode === 'passthrough') {
      rules.push({ match: [`tcp dport ${port(r.port, 'ingress.rules.port')}`], verdict: 'accept', comment: `passthrough ${r.name}` })
    }
  }
  for (const r of config.ingress.rules) {
    if (r.mode === 'tls') {
      rules.push({
        match: [`tcp dport ${port(r.port, 'ingress.rules.port')}`, LOCAL_DESTINATION],
        act: [`tproxy to :${MESH_PORTS.ingressTls}`, DELIVERED_TO_LISTENER],
        verdict: 'accept',
        comment: `tls without client certificate ${r.name}`,
      })
    }
  }
  rules.push(
    { match: [TCP, LOCAL_DESTINATION], act: [`tproxy to :${MESH_PORTS.ingressMtls}`, DELIVERED_TO_LISTENER], verdict: 'accept', comment: 'mTLS' },
    // The data plane is not listening: fail closed.
    ...logThenDrop([TCP], LOG_PREFIX.ingressNoListener, 'ingress without listener'),
    // The mesh protects TCP only; a new inbound flow of any other protocol is refused.
    ...logThenDrop([], LOG_PREFIX.ingressNonTcp, 'inbound non-tcp'),
  )
  return rules
}

function egressOutput(config: MeshConfig): Rule[] {
  const rules: Rule[] = [
    { match: ['oifname "lo"'], verdict: 'accept', comment: 'loopback' },
    { match: [`meta mark ${hex(MESH_SOCKET_MARK)}`], verdict: 'accept', comment: 'the mesh data plane itself' },
    { match: ['ct direction reply'], verdict: 'accept', comment: 'replies of inbound connections' },
    { match: ['meta l4proto != tcp'], verdict: 'accept', comment: 'only TCP is captured' },
    { match: ['tcp dport 53'], verdict: 'accept', comment: 'DNS' },
  ]
  config.transparentEgress.allowPlaintext.forEach((d, i) => {
    const match = [destination(d, `transparentEgress.allowPlaintext[${i}]`)]
    if (d.port !== undefined) match.push(`tcp dport ${port(d.port, `transparentEgress.allowPlaintext[${i}].port`)}`)
    rules.push({ match, verdict: 'accept', comment: 'plaintext allowed' })
  })
  rules.push({
    match: [TCP],
    act: [SET_TPROXY_MARK],
    comment: 'capture: policy routing loops it to prerouting',
  })
  return rules
}

function routes(): RouteCommand[] {
  const out: RouteCommand[] = []
  for (const [fam, any] of [['-4', '0.0.0.0/0'], ['-6', '::/0']] as const) {
    out.push([fam, 'rule', 'add', 'fwmark', hex(TPROXY_MARK), 'lookup', String(TPROXY_ROUTE_TABLE)])
    out.push([fam, 'route', 'replace', 'local', any, 'dev', 'lo', 'table', String(TPROXY_ROUTE_TABLE)])
  }
  return out
}

/** The ruleset `run` installs once the data plane listens. */
export function renderFinal(config: MeshConfig): Ruleset {
  const egress = config.transparentEgress.enabled
  const prerouting: Rule[] = [
    ...(egress ? egressCapturePrerouting() : []),
    // DISABLED: an egress-only pod, no ingress rules at all (no redirection, no drop).
    ...(config.ingress.enabled ? ingressPrerouting(config) : []),
  ]
  const chains: Chain[] = [{ name: 'prerouting', decl: PREROUTING_DECL, rules: prerouting }]
  if (egress) chains.push({ name: 'output', decl: OUTPUT_DECL, rules: egressOutput(config) })
  // Routes always: harmless for ingress (its destinations are local anyway), needed for capture.
  return { nft: script('final', chains), routes: routes() }
}

/**
 * The fail-closed ruleset installed at boot, before the data plane exists: nothing
 * inbound reaches the app; the daemon's own outbound calls get their replies; IPv6
 * neighbour discovery keeps working. Without a config (the image's boot unit, before
 * anything is read) that is all. With a config that enables transparent egress, the
 * capture is in place from the start as well: the workload's outbound TCP goes to the
 * capture listener, which holds it until certificates exist, or is dropped when no
 * listener is there — never out in plaintext.
 */
export function renderBaseline(config?: MeshConfig): Ruleset {
  const capture = config?.transparentEgress.enabled === true
  const rules: Rule[] = [
    ...(capture ? egressCapturePrerouting() : []),
    loopbackAccept,
    ...loopbackFromOutside,
    repliesAccept,
    ...notForThisPod,
    dataPlaneFlowAccept,
    {
      // MLD queries too: a snooping switch that stops hearing our reports would stop
      // forwarding neighbour solicitations for our addresses to us.
      match: [
        'icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert, nd-redirect, mld-listener-query }',
      ],
      verdict: 'accept',
      comment: 'ICMPv6 neighbour discovery',
    },
    ...logThenDrop([], LOG_PREFIX.baseline, 'baseline: nothing inbound before the mesh is ready'),
  ]
  const chains: Chain[] = [{ name: 'prerouting', decl: PREROUTING_DECL, rules }]
  if (capture) chains.push({ name: 'output', decl: OUTPUT_DECL, rules: egressOutput(config) })
  return { nft: script('baseline', chains), routes: capture ? routes() : [] }
}

/**
 * Removes the table and the routes. The `ip` commands here are deletions that fail once
 * there is nothing left to delete; the applier repeats `rule del` until it fails
 * (duplicates) and treats "not found" as done.
 */
export function renderTeardown(): Ruleset {
  const header = '# podvm-mesh teardown (generated)\n'
  const nft = `${header}add table ${NFT_FAMILY} ${NFT_TABLE}\ndelete table ${NFT_FAMILY} ${NFT_TABLE}\n`
  const out: RouteCommand[] = []
  for (const fam of ['-4', '-6'] as const) {
    out.push([fam, 'rule', 'del', 'fwmark', hex(TPROXY_MARK), 'lookup', String(TPROXY_ROUTE_TABLE)])
    out.push([fam, 'route', 'flush', 'table', String(TPROXY_ROUTE_TABLE)])
  }
  return { nft, routes: out }
}

/** `ip -4 rule add ...`: how a route command reads in a shell or a log. */
export function formatRouteCommand(cmd: RouteCommand): string {
  return ['ip', ...cmd].join(' ')
}

// --- text ----------------------------------------------------------------------------

function script(kind: 'final' | 'baseline', chains: readonly Chain[]): string {
  const lines = [
    `# podvm-mesh ${kind} ruleset (generated; one atomic transaction)`,
    `add table ${NFT_FAMILY} ${NFT_TABLE}`,
    `delete table ${NFT_FAMILY} ${NFT_TABLE}`,
    `table ${NFT_FAMILY} ${NFT_TABLE} {`,
  ]
  chains.forEach((c, i) => {
    if (i > 0) lines.push('')
    lines.push(`\tchain ${c.name} {`, `\t\t${c.decl}`)
    for (const r of c.rules) lines.push(`\t\t${renderRule(r)}`)
    lines.push('\t}')
  })
  lines.push('}')
  return `${lines.join('\n')}\n`
}

function renderRule(r: Rule): string {
  const parts = [...r.match, ...(r.act ?? []), 'counter']
  if (r.log !== undefined) parts.push(`log prefix ${quote(r.log)}`)
  if (r.verdict !== undefined) parts.push(r.verdict)
  parts.push(`comment ${quote(r.comment)}`)
  return parts.join(' ')
}

// Names come from the (measured) config; they only ever land inside a quoted comment,
// and anything that could end the string or the line is replaced.
const MAX_COMMENT_CHARS = 120
function quote(s: string): string {
  const safe = s.replace(/[^A-Za-z0-9 _.,:/()@+=-]/g, '_').slice(0, MAX_COMMENT_CHARS)
  return `"${safe}"`
}

// Values that end up as nft tokens are re-checked here, so a bug upstream can at worst
// fail the render, never inject a statement.
function port(p: Port, field: string): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) {
    throw new NetfilterError('NETFILTER_INVALID_CONFIG', `${field}: ${String(p)} is not a TCP port`, { field, value: p })
  }
  return p
}

function destination(d: PlaintextDestination, field: string): string {
  const [addr = '', len = '', ...rest] = d.cidr.split('/')
  const max = d.family === 4 ? 32 : 128
  const addrOk = d.family === 4 ? isIPv4(addr) : isIPv6(addr)
  const lenOk = /^\d{1,3}$/.test(len) && Number(len) <= max
  if (rest.length > 0 || !addrOk || !lenOk) {
    throw new NetfilterError('NETFILTER_INVALID_CONFIG', `${field}.cidr: "${d.cidr}" is not an IPv${d.family} CIDR`, {
      field: `${field}.cidr`,
      value: d.cidr,
      family: d.family,
    })
  }
  return `${d.family === 4 ? 'ip' : 'ip6'} daddr ${addr}/${len}`
}

