// With transparent egress, every outbound TCP connection that carries no mesh mark is
// captured and wrapped in mTLS. The daemon's own calls to the coordinator cannot carry
// the mark (gRPC opens its sockets itself) and must not be wrapped: the coordinator
// speaks attested TLS of its own. Its addresses therefore join the plaintext allow-list,
// for its port only. Resolved once at start; a coordinator that moves needs a restart.

import { lookup as dnsLookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import type { MeshConfig, PlaintextDestination, Port } from '../config/index.js'

type Lookup = (host: string) => Promise<readonly { address: string; family: number }[]>

const defaultLookup: Lookup = (host) => dnsLookup(host, { all: true })

export async function exemptCoordinator(config: MeshConfig, address: string, lookup: Lookup = defaultLookup): Promise<MeshConfig> {
  if (!config.transparentEgress.enabled) return config
  const at = address.lastIndexOf(':')
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1')
  const port = Number(address.slice(at + 1)) as Port
  const addresses = isIP(host) !== 0 ? [{ address: host, family: isIP(host) }] : await lookup(host)
  const extra: PlaintextDestination[] = addresses.map((a) => ({
    cidr: `${a.address}/${a.family === 6 ? 128 : 32}`,
    family: a.family === 6 ? 6 : 4,
    port,
  }))
  return {
    ...config,
    transparentEgress: { ...config.transparentEgress, allowPlaintext: [...config.transparentEgress.allowPlaintext, ...extra] },
  }
}
