// Is an address one of the pod's own, as the network reaches it? The ingress data plane
// forwards a decrypted stream only to such an address: anything else would relay it off
// the pod.
//
// An address configured on one of the pod's interfaces, except the loopback addresses
// (127.0.0.0/8, ::1): they are the pod's too, but a connection arriving from the network
// addressed to them (a host routing 127/8 to the pod, with route_localnet set) would reach
// services bound to loopback precisely to stay off the network. The ruleset drops such
// packets; this is the second layer. Any other address counts wherever it is configured,
// a VIP on `lo` too, as for the ruleset (`fib daddr type local`) and Envoy (which refuses
// just the loopback prefixes). IPv4-mapped IPv6 (`::ffff:10.0.0.2`, what a dual-stack
// socket reports) is the IPv4 address. A link-local address (fe80::/10) is local only together
// with its scope, and only on the interface that holds it (`fe80::1%eth0`).
//
// kata-agent configures the pod's addresses after the daemon starts, so the list is
// read again when an address is not found (at most every MISS_REFRESH_MS, so a flood of
// foreign destinations cannot make every connection pay for a read), and a list older
// than MAX_AGE_MS is never used: an address the pod gave up stops counting within that.

import net from 'node:net'
import os from 'node:os'

/** A snapshot older than this is read again before it answers. */
export const LOCAL_ADDRESSES_MAX_AGE_MS = 1_000
/** On a miss, the snapshot is read again if it is at least this old. */
export const LOCAL_ADDRESSES_MISS_REFRESH_MS = 100

export type InterfaceReader = () => NodeJS.Dict<os.NetworkInterfaceInfo[]>

interface Snapshot {
  readonly at: number
  /** Addresses of all interfaces except link-local ones (loopback addresses never match: LOOPBACK). */
  readonly local: net.BlockList
  /** Link-local address -> the interfaces that hold it. */
  readonly linkLocal: ReadonlyMap<string, ReadonlySet<string>>
}

/** Loopback addresses: never a destination from the network, whichever interface holds them. */
const LOOPBACK = new net.BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

function isLinkLocal6(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address)
}

/** `fe80:0::1` and `fe80::1` are the same address: compare a canonical text. */
function canonical6(address: string): string {
  return new net.SocketAddress({ address, family: 'ipv6' }).address
}

function read(reader: InterfaceReader, at: number): Snapshot {
  const local = new net.BlockList()
  const linkLocal = new Map<string, Set<string>>()
  for (const [name, infos] of Object.entries(reader())) {
    for (const info of infos ?? []) {
      const family = info.family === 'IPv4' ? 'ipv4' : 'ipv6'
      if (family === 'ipv6' && isLinkLocal6(info.address)) {
        const key = canonical6(info.address.split('%')[0] ?? '')
        const holders = linkLocal.get(key) ?? new Set<string>()
        holders.add(name)
        linkLocal.set(key, holders)
        continue
      }
      local.addAddress(info.address, family)
    }
  }
  return { at, local, linkLocal }
}

export class LocalAddresses {
  readonly #reader: InterfaceReader
  readonly #now: () => number
  #snapshot: Snapshot | undefined

  constructor(opts: { reader?: InterfaceReader; now?: () => number } = {}) {
    this.#reader = opts.reader ?? os.networkInterfaces
    this.#now = opts.now ?? Date.now
  }

  /** Whether `address` (as a socket reports it: mapped, scoped) is a network-facing address of this pod. */
  isLocal(address: string): boolean {
    const a = parse(address)
    // Refused before any read: a loopback or malformed destination is not a miss worth
    // reading the interfaces again for (a flood of them would otherwise pay for reads).
    if (a === undefined || LOOPBACK.check(a.addr, a.family)) return false
    const now = this.#now()
    let snap = this.#snapshot
    if (snap === undefined || now - snap.at >= LOCAL_ADDRESSES_MAX_AGE_MS) snap = this.#snapshot = read(this.#reader, now)
    if (matches(snap, a)) return true
    if (now - snap.at < LOCAL_ADDRESSES_MISS_REFRESH_MS) return false
    this.#snapshot = read(this.#reader, now)
    return matches(this.#snapshot, a)
  }
}

interface Destination {
  /** IPv4-mapped IPv6 is given as the IPv4 address. */
  readonly addr: string
  readonly family: 'ipv4' | 'ipv6'
  readonly scope: string | undefined
}

/** A socket's address text; undefined when it is no address (or an IPv4 one with a scope). */
function parse(address: string): Destination | undefined {
  const [text = '', scope, ...rest] = address.split('%')
  if (rest.length > 0) return undefined
  const addr = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text)?.[1] ?? text
  if (net.isIPv4(addr)) return scope === undefined ? { addr, family: 'ipv4', scope } : undefined
  return net.isIPv6(addr) ? { addr, family: 'ipv6', scope } : undefined
}

function matches(snap: Snapshot, a: Destination): boolean {
  if (a.family === 'ipv6' && isLinkLocal6(a.addr)) return a.scope !== undefined && (snap.linkLocal.get(canonical6(a.addr))?.has(a.scope) ?? false)
  return snap.local.check(a.addr, a.family)
}
