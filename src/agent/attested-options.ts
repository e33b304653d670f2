// `run`'s flags for attested certificates. Apart from attested-certs.ts so that a daemon
// whose certificates come from files never loads the gRPC client.

import { AgentError } from './errors.js'

export const ATTESTED_OPTIONS = {
  coordinator: { type: 'string' },
  'coordinator-identity': { type: 'string' },
  'coordinator-measurement': { type: 'string', multiple: true },
  evidence: { type: 'string' },
  'simulated-hostdata': { type: 'string' },
} as const

export const ATTESTED_USAGE = `  --coordinator HOST:PORT     obtain certificates from this coordinator (attested), renew at 2/3 lifetime
  --coordinator-identity ID  policy:<hex> (its policy hash) or root-ca:<sha256 of its root CA>
  --coordinator-measurement HEX  its launch measurement (SNP MEASUREMENT / TDX MRTD); repeatable;
                             required with a policy pin on real hardware
  --evidence KIND            auto (default), configfs-tsm, attestation-agent, simulated (no TEE: labs only)
  --simulated-hostdata HEX   HOST_DATA (32 B) of simulated evidence
`

/** The attested flags mean nothing without --coordinator; say so instead of ignoring them. */
export function requireCoordinatorForAttestedFlags(values: Readonly<Record<string, unknown>>): void {
  for (const k of ['coordinator-identity', 'coordinator-measurement', 'evidence', 'simulated-hostdata'] as const) {
    if (values[k] !== undefined) throw new AgentError('AGENT_BAD_ARGS', `--${k} needs --coordinator`, { field: k })
  }
}
