// Prometheus text exposition (format 0.0.4) of the data plane's counters and the
// daemon's own gauges. Rendered on scrape from a snapshot: nothing on the data path.

import type { DataPlaneStats } from '../dataplane/index.js'

export interface AgentGauges {
  readonly ready: boolean
  readonly state: string
  /** Leaf certificate expiry, when certificates are loaded. */
  readonly certificateNotAfter?: Date
  readonly certificateReloads: number
  readonly startedAt: Date
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function family(out: string[], name: string, type: 'counter' | 'gauge', help: string): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
}

function labelled(out: string[], name: string, label: string, values: Readonly<Record<string, number>>): void {
  for (const key of Object.keys(values).sort()) {
    out.push(`${name}{${label}="${escapeLabel(key)}"} ${values[key]}`)
  }
}

export function renderMetrics(stats: DataPlaneStats | undefined, gauges: AgentGauges): string {
  const out: string[] = []
  family(out, 'podvm_mesh_ready', 'gauge', 'Whether the mesh is ready (1) or still closed (0).')
  out.push(`podvm_mesh_ready ${gauges.ready ? 1 : 0}`)
  family(out, 'podvm_mesh_state', 'gauge', 'The daemon state, as a label.')
  out.push(`podvm_mesh_state{state="${escapeLabel(gauges.state)}"} 1`)
  family(out, 'podvm_mesh_start_time_seconds', 'gauge', 'Unix time the daemon started.')
  out.push(`podvm_mesh_start_time_seconds ${gauges.startedAt.getTime() / 1000}`)
  family(out, 'podvm_mesh_certificate_reloads_total', 'counter', 'Certificate sets loaded into the data plane.')
  out.push(`podvm_mesh_certificate_reloads_total ${gauges.certificateReloads}`)
  if (gauges.certificateNotAfter !== undefined) {
    family(out, 'podvm_mesh_certificate_expiry_seconds', 'gauge', 'Unix time the leaf certificate expires.')
    out.push(`podvm_mesh_certificate_expiry_seconds ${gauges.certificateNotAfter.getTime() / 1000}`)
  }
  if (stats !== undefined) {
    family(out, 'podvm_mesh_connections_accepted_total', 'counter', 'Connections accepted, by listener.')
    labelled(out, 'podvm_mesh_connections_accepted_total', 'listener', stats.connectionsAccepted)
    family(out, 'podvm_mesh_connections_active', 'gauge', 'Connections open now.')
    out.push(`podvm_mesh_connections_active ${stats.connectionsActive}`)
    if (stats.connectionsPending !== undefined) {
      family(out, 'podvm_mesh_connections_pending', 'gauge', 'Open connections not authenticated yet (held for certificates or in the handshake).')
      out.push(`podvm_mesh_connections_pending ${stats.connectionsPending}`)
    }
    family(out, 'podvm_mesh_handshakes_total', 'counter', 'Completed TLS handshakes, by listener.')
    labelled(out, 'podvm_mesh_handshakes_total', 'listener', stats.handshakesCompleted)
    family(out, 'podvm_mesh_failures_total', 'counter', 'Refused or failed connections, by reason.')
    labelled(out, 'podvm_mesh_failures_total', 'reason', stats.failures)
    family(out, 'podvm_mesh_bytes_total', 'counter', 'Application bytes carried, by direction.')
    out.push(`podvm_mesh_bytes_total{direction="in"} ${stats.bytesIn}`)
    out.push(`podvm_mesh_bytes_total{direction="out"} ${stats.bytesOut}`)
  }
  return `${out.join('\n')}\n`
}
