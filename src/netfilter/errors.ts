import { MeshError } from '../errors.js'

export type NetfilterCode =
  /** A config value cannot be rendered safely (e.g. a CIDR that is not one). */
  | 'NETFILTER_INVALID_CONFIG'
  /** `nft -f` rejected the script; the previous ruleset is still in place. */
  | 'NETFILTER_APPLY_FAILED'
  /** An `ip rule` / `ip route` command failed. */
  | 'NETFILTER_ROUTE_FAILED'
  /** Tearing down the table or the routes failed for a reason other than "already gone". */
  | 'NETFILTER_REMOVE_FAILED'

export class NetfilterError extends MeshError<NetfilterCode> {}
