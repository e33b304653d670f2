// The mesh configuration as the rest of the daemon sees it: validated, normalized,
// immutable. Parsing (env strings, JSON/TOML files) lives in parse.ts and is the
// only way to obtain a MeshConfig.

declare const portBrand: unique symbol
/** A TCP port, 1..65535. Only the config parser and `toPort` mint these. */
export type Port = number & { readonly [portBrand]: true }

/** Ports the mesh itself owns (compatible with Contrast's sidecar). */
export const MESH_PORTS = {
  /** Ingress, TLS terminated, client certificate chaining to the mesh CA required. */
  ingressMtls: 15006 as Port,
  /** Ingress, TLS terminated, no client certificate required (`name#port#false`). */
  ingressTls: 15007 as Port,
  /** Transparent egress capture. */
  egressCapture: 15001 as Port,
} as const

/** Health/readiness/metrics when no admin port is configured: loopback only. */
export const DEFAULT_ADMIN_PORT = 15020 as Port

/**
 * Socket mark the data plane puts (SO_MARK) on every socket it opens itself, so the
 * ruleset never captures the mesh's own traffic. A mark, not a uid: the workload may
 * run as any uid, including the daemon's.
 */
export const MESH_SOCKET_MARK = 0x50d
/** Mark set by tproxy rules; `ip rule fwmark` sends marked packets to the local table. */
export const TPROXY_MARK = 0x50e
/** Policy-routing table holding `local default dev lo` for IPv4 and IPv6. */
export const TPROXY_ROUTE_TABLE = 150

/** Per-port ingress exception; every port without a rule gets mTLS with client cert. */
export interface IngressRule {
  /** Informational, from the entry. */
  readonly name: string
  readonly port: Port
  /**
   * `tls`: `name#port#false` — TLS terminated on 15007, no client certificate.
   * `passthrough`: `name#port#true` — not redirected, plaintext reaches the app.
   */
  readonly mode: 'tls' | 'passthrough'
}

export interface IngressConfig {
  /** false for the whole value `DISABLED`: no ingress redirection (egress-only pod). */
  readonly enabled: boolean
  /** Sorted by port. Empty when disabled. */
  readonly rules: readonly IngressRule[]
}

/** `name#127.x.y.z:port#host:port` */
export interface EgressRule {
  readonly name: string
  /** Listen address inside 127.0.0.0/8, dotted quad. */
  readonly listen: { readonly address: string; readonly port: Port }
  /** host is a DNS name or an IP literal (IPv6 without brackets); it must be a SAN of the server's certificate. */
  readonly remote: {
    readonly host: string
    readonly port: Port
    /** Written with a trailing dot: dial `host.` (no DNS search domains); `host` (without the dot) is what a SAN must match. */
    readonly absolute?: true
  }
  /**
   * Contrast's behaviour, chosen per entry for a peer whose certificate names cannot be
   * known: the server's certificate must chain to the mesh CA, and its names are not
   * checked. Any mesh member can then answer for this host. The daemon warns at start.
   */
  readonly meshCaOnly?: true
}

/** A destination that transparent egress leaves in plaintext. */
export interface PlaintextDestination {
  /** Normalized CIDR, e.g. `10.0.0.0/8`, `fd00::/64`, `192.0.2.7/32`. */
  readonly cidr: string
  readonly family: 4 | 6
  /** Only this port when set, every port otherwise. */
  readonly port?: Port
}

export interface TransparentEgressConfig {
  /** Opt-in: capture all outbound TCP of the workload to 15001 and wrap it in mTLS. */
  readonly enabled: boolean
  /** Destinations that stay plaintext. DNS (TCP 53) is always exempt. */
  readonly allowPlaintext: readonly PlaintextDestination[]
}

export interface AdminConfig {
  readonly port: Port
  /**
   * true when CONTRAST_ADMIN_PORT (or EDG_ADMIN_PORT, or the file's admin.port) set
   * it: bound on all addresses and, like any other port, reached through the mesh
   * (mTLS) unless an ingress entry names it (`admin#P#true`: plaintext, as Contrast's
   * tooling writes it; `#false`: TLS without client certificate). false: loopback only.
   */
  readonly exposed: boolean
}

export interface MeshConfig {
  readonly ingress: IngressConfig
  /** Sorted by listen address then port. */
  readonly egress: readonly EgressRule[]
  readonly transparentEgress: TransparentEgressConfig
  readonly admin: AdminConfig
}
