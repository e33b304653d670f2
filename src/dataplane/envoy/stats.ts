// Maps Envoy's admin counters (`GET /stats?format=json`) onto DataPlaneStats, so the
// agent's metrics read the same whichever data plane runs. Pure; the supervisor scrapes.
//
// The bootstrap sets each listener's stat_prefix and each tcp_proxy's stat_prefix to
// the listener's Envoy name, so the names below are exact, not pattern-matched:
//   listener.<name>.downstream_cx_total|_active, listener.<name>.ssl.*   (downstream TLS)
//   cluster.<cluster>.ssl.*, cluster.<cluster>.upstream_cx_connect_fail    (upstream TLS)
//   tcp.<name>.downstream_cx_rx_bytes_total|tx_bytes_total                 (bytes)
//   tcp.<name>.loop-guard.downstream_cx_total                              (LOOP)
//   tcp.<name>.not-local.downstream_cx_total                               (NOT_LOCAL)

import type { DataPlaneStats } from '../dataplane.js'
import type { DataPlaneSpec, ListenerSpec } from '../spec.js'
import { EnvoyError } from './errors.js'
import { CLUSTERS, egressResourceName, loopGuardStatPrefix, notLocalStatPrefix } from './bootstrap.js'

export type EnvoyCounters = ReadonlyMap<string, number>

/**
 * Counters and gauges from the JSON body; histograms and non-numbers are skipped. A body
 * that is not Envoy's stats document throws (ENVOY_ADMIN): read as "no counters", it
 * would reset the metrics to zero and make a draining Envoy look idle.
 */
export function parseEnvoyStats(body: string): EnvoyCounters {
  const out = new Map<string, number>()
  let doc: unknown
  try {
    doc = JSON.parse(body)
  } catch (cause) {
    throw new EnvoyError('ENVOY_ADMIN', 'admin /stats: not JSON', { length: body.length }, { cause })
  }
  const stats = (doc as { stats?: unknown } | null)?.stats
  if (!Array.isArray(stats)) throw new EnvoyError('ENVOY_ADMIN', 'admin /stats: no "stats" array', { length: body.length })
  for (const s of stats) {
    if (typeof s !== 'object' || s === null) continue
    const { name, value } = s as { name?: unknown; value?: unknown }
    if (typeof name === 'string' && typeof value === 'number' && Number.isFinite(value)) out.set(name, value)
  }
  return out
}

function envoyName(l: ListenerSpec): string {
  return l.kind === 'egress' ? egressResourceName(l) : l.name
}

/** The cluster carrying the listener's upstream TLS, if any (ingress goes out in plaintext). */
function tlsCluster(l: ListenerSpec): string | undefined {
  switch (l.kind) {
    case 'ingress':
      return undefined
    case 'egress-capture':
      return CLUSTERS.egressCapture
    case 'egress':
      return egressResourceName(l)
  }
}

function upstreamCluster(l: ListenerSpec): string {
  return tlsCluster(l) ?? CLUSTERS.ingress
}

export function statsFromEnvoy(spec: DataPlaneSpec, c: EnvoyCounters): DataPlaneStats {
  const get = (name: string): number => c.get(name) ?? 0
  const accepted: Record<string, number> = {}
  const handshakes: Record<string, number> = {}
  const failures: Record<string, number> = {}
  const fail = (reason: string, n: number): void => {
    if (n > 0) failures[reason] = (failures[reason] ?? 0) + n
  }
  let active = 0
  let bytesIn = 0
  let bytesOut = 0
  const clustersSeen = new Set<string>()
  for (const l of spec.listeners) {
    const name = envoyName(l)
    const ls = `listener.${name}.`
    accepted[l.name] = (accepted[l.name] ?? 0) + get(`${ls}downstream_cx_total`)
    active += get(`${ls}downstream_cx_active`)
    bytesIn += get(`tcp.${name}.downstream_cx_rx_bytes_total`)
    bytesOut += get(`tcp.${name}.downstream_cx_tx_bytes_total`)
    if (l.kind !== 'egress') fail('LOOP', get(`tcp.${loopGuardStatPrefix(name)}.downstream_cx_total`))
    const cluster = tlsCluster(l)
    if (l.kind === 'ingress') {
      fail('NOT_LOCAL', get(`tcp.${notLocalStatPrefix(name)}.downstream_cx_total`))
      handshakes[l.name] = (handshakes[l.name] ?? 0) + get(`${ls}ssl.handshake`)
      fail('TLS_HANDSHAKE', get(`${ls}ssl.connection_error`))
      fail('NO_CLIENT_CERT', get(`${ls}ssl.fail_verify_no_cert`))
      fail('CERT_VERIFY', get(`${ls}ssl.fail_verify_error`))
    } else if (cluster !== undefined) {
      handshakes[l.name] = (handshakes[l.name] ?? 0) + get(`cluster.${cluster}.ssl.handshake`)
    }
    // A cluster shared by two listeners (the ingress cluster) is counted once.
    const up = upstreamCluster(l)
    if (clustersSeen.has(up)) continue
    clustersSeen.add(up)
    fail('UPSTREAM_CONNECT', get(`cluster.${up}.upstream_cx_connect_fail`))
    if (cluster !== undefined) {
      fail('TLS_HANDSHAKE', get(`cluster.${cluster}.ssl.connection_error`))
      fail('CERT_VERIFY', get(`cluster.${cluster}.ssl.fail_verify_error`))
      fail('SAN_MISMATCH', get(`cluster.${cluster}.ssl.fail_verify_san`))
    }
  }
  return {
    connectionsAccepted: accepted,
    connectionsActive: active,
    handshakesCompleted: handshakes,
    failures,
    bytesIn,
    bytesOut,
  }
}

/** Adds two snapshots' counters (gauges taken from `b`): Envoy's counters restart at zero with the process. */
export function addStats(a: DataPlaneStats, b: DataPlaneStats): DataPlaneStats {
  const sum = (x: Readonly<Record<string, number>>, y: Readonly<Record<string, number>>): Record<string, number> => {
    const out: Record<string, number> = { ...x }
    for (const [k, v] of Object.entries(y)) out[k] = (out[k] ?? 0) + v
    return out
  }
  return {
    connectionsAccepted: sum(a.connectionsAccepted, b.connectionsAccepted),
    connectionsActive: b.connectionsActive,
    handshakesCompleted: sum(a.handshakesCompleted, b.handshakesCompleted),
    failures: sum(a.failures, b.failures),
    bytesIn: a.bytesIn + b.bytesIn,
    bytesOut: a.bytesOut + b.bytesOut,
  }
}
