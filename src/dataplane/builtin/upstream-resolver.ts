// Upstream host names to addresses, remembered briefly. Without it every egress
// connection paid a getaddrinfo round trip through the libuv thread pool (reading
// /etc/hosts and nsswitch each time), a visible share of a resumed connection's cost.
// The address only picks where to connect: the upstream's identity is still checked
// by its certificate on every connection, so a stale answer can fail a connection,
// never misdirect trust. Failures are not remembered.

import dns from 'node:dns/promises'
import { Lru } from '../../lru.js'

/** How long a looked-up address is reused (Envoy's STRICT_DNS default refresh is 5 s). */
export const UPSTREAM_ADDRESS_TTL_MS = 5_000
/** Bound on remembered names; the oldest goes first. */
export const UPSTREAM_ADDRESS_ENTRIES = 1024

export type LookupFn = (host: string) => Promise<string>

const systemLookup: LookupFn = async (host) => (await dns.lookup(host)).address

export class UpstreamResolver {
  readonly #entries = new Lru<string, { readonly address: string; readonly expires: number }>(UPSTREAM_ADDRESS_ENTRIES)
  readonly #lookup: LookupFn
  readonly #now: () => number
  readonly #ttlMs: number

  constructor(opts: { lookup?: LookupFn; now?: () => number; ttlMs?: number } = {}) {
    this.#lookup = opts.lookup ?? systemLookup
    this.#now = opts.now ?? Date.now
    this.#ttlMs = opts.ttlMs ?? UPSTREAM_ADDRESS_TTL_MS
  }

  /** The address for `host`, from memory while fresh; rejects as the lookup does. */
  async resolve(host: string): Promise<string> {
    const hit = this.#entries.get(host)
    if (hit !== undefined && hit.expires > this.#now()) return hit.address
    const address = await this.#lookup(host)
    this.#entries.set(host, { address, expires: this.#now() + this.#ttlMs })
    return address
  }
}
