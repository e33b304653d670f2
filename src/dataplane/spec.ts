// The data-plane spec: what listeners exist and what each does with a connection.
// Derived purely from a MeshConfig; the builtin and Envoy data planes both consume
// it, so a feature is specified once.

import type { MeshConfig, Port } from '../config/index.js'
import { MESH_PORTS } from '../config/index.js'

/** Ingress: transparent, TLS terminated, plaintext to the original destination. */
export interface IngressListenerSpec {
  readonly kind: 'ingress'
  readonly name: 'ingress' | 'ingress-no-client-auth'
  readonly port: Port
  readonly requireClientCert: boolean
  /**
   * Connections whose original destination port is one of these are refused: a
   * connection addressed to a mesh port itself would otherwise loop through the proxy.
   */
  readonly loopGuardPorts: readonly Port[]
}

/** Explicit egress: loopback listener, mTLS to a fixed remote whose cert must carry `verifyName`. */
export interface EgressListenerSpec {
  readonly kind: 'egress'
  readonly name: string
  readonly address: string
  readonly port: Port
  readonly upstream: { readonly host: string; readonly port: Port }
  /**
   * Secure naming: this must be a DNS or IP SAN of the server certificate. undefined
   * only for an entry configured `meshCaOnly` (Contrast's behaviour: the mesh CA alone).
   */
  readonly verifyName: string | undefined
}

/** Transparent egress: captured outbound TCP, mTLS to the original destination, whose IP must be a SAN. */
export interface EgressCaptureListenerSpec {
  readonly kind: 'egress-capture'
  readonly name: 'egress-capture'
  readonly port: Port
  readonly loopGuardPorts: readonly Port[]
}

export type ListenerSpec = IngressListenerSpec | EgressListenerSpec | EgressCaptureListenerSpec

export interface TimeoutsSpec {
  /** A TLS handshake that has not completed by then is destroyed. */
  readonly handshakeMs: number
  /** Upstream TCP connect. */
  readonly connectMs: number
  /** Accepted connections wait at most this long for certificates before being closed. */
  readonly certificateWaitMs: number
  /** On close(), established connections get this long before they are destroyed. */
  readonly drainMs: number
}

/**
 * Bounds on connections that have not authenticated yet (held while certificates are
 * missing, or in the TLS handshake). The builtin data plane enforces them
 * (builtin/admission.ts); Envoy has its own cap on all downstream connections.
 */
export interface PendingLimits {
  /** Pending connections per listener; beyond it the oldest is shed. */
  readonly pendingPerListener: number
  /** Pending connections per source address on ingress listeners; beyond it new ones are refused. */
  readonly pendingPerSource: number
}

/**
 * The per-source bound leaves room for a peer that opens a connection pool at once;
 * what a full listener costs in memory is measured by bench/flood.ts (bench/README.md).
 */
export const DEFAULT_PENDING_LIMITS: PendingLimits = { pendingPerListener: 1024, pendingPerSource: 128 }

export interface DataPlaneSpec {
  /** Stable order: ingress (15006, 15007), egress capture, egress by address:port. */
  readonly listeners: readonly ListenerSpec[]
  readonly timeouts: TimeoutsSpec
}

/**
 * The mesh's TLS parameters, one list for every data plane: TLS 1.3 preferred, 1.2
 * accepted with ECDHE (forward secrecy) and AEAD suites only. TLS 1.3's own suites are
 * all AEAD; Envoy (BoringSSL) does not let them be configured at all. The 1.2 floor is
 * what keeps Contrast's sidecars as peers: their Envoy originates TLS 1.2 (its upstream
 * default); test/e2e/contrast-peer.test.ts fails with a 1.3-only policy.
 */
export const TLS_POLICY = {
  minVersion: 'TLSv1.2',
  maxVersion: 'TLSv1.3',
  tls13Suites: ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'],
  tls12Suites: [
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ],
  curves: ['X25519', 'P-256'],
} as const

export const DEFAULT_TIMEOUTS: TimeoutsSpec = {
  handshakeMs: 10_000,
  connectMs: 10_000,
  certificateWaitMs: 30_000,
  drainMs: 5_000,
}

/**
 * Egress entry names are free text (as in Contrast) and may repeat; a listener's name
 * is an identifier (Envoy resource and stat names, metric labels, log fields): safe
 * characters only, unique, and recognisably the entry's name.
 */
function listenerName(name: string, taken: Set<string>): string {
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 60) || '_'
  let candidate = safe
  for (let n = 2; taken.has(candidate); n++) candidate = `${safe}-${n}`
  taken.add(candidate)
  return candidate
}

export function deriveSpec(config: MeshConfig, timeouts: TimeoutsSpec = DEFAULT_TIMEOUTS): DataPlaneSpec {
  // An exposed admin port is reached through the mesh like any other port, so the data
  // plane must forward to it; the loopback-only default is never a destination.
  const guard = [MESH_PORTS.ingressMtls, MESH_PORTS.ingressTls, MESH_PORTS.egressCapture, ...(config.admin.exposed ? [] : [config.admin.port])]
  const listeners: ListenerSpec[] = []
  if (config.ingress.enabled) {
    listeners.push(
      { kind: 'ingress', name: 'ingress', port: MESH_PORTS.ingressMtls, requireClientCert: true, loopGuardPorts: guard },
      {
        kind: 'ingress',
        name: 'ingress-no-client-auth',
        port: MESH_PORTS.ingressTls,
        requireClientCert: false,
        loopGuardPorts: guard,
      },
    )
  }
  if (config.transparentEgress.enabled) {
    listeners.push({ kind: 'egress-capture', name: 'egress-capture', port: MESH_PORTS.egressCapture, loopGuardPorts: guard })
  }
  const taken = new Set(listeners.map((l) => l.name))
  for (const rule of config.egress) {
    listeners.push({
      kind: 'egress',
      name: listenerName(rule.name, taken),
      address: rule.listen.address,
      port: rule.listen.port,
      upstream: { host: rule.remote.absolute === true ? `${rule.remote.host}.` : rule.remote.host, port: rule.remote.port },
      verifyName: rule.meshCaOnly === true ? undefined : rule.remote.host,
    })
  }
  return { listeners, timeouts }
}
