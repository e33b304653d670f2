// The evidence provider `--evidence KIND` names (run and coordinator): the TEE's own
// interfaces, auto-selection among them (never falling back to simulation), or
// simulation when asked for by name.

import type { Logger } from 'pino'
import {
  AttestationAgentProvider,
  ConfigfsTsmProvider,
  selectProvider,
  SimulatedProvider,
  type EvidenceProvider,
} from '../attestation/index.js'
import { UsageError } from './command.js'

export type EvidenceKind = 'auto' | 'configfs-tsm' | 'attestation-agent' | 'simulated'

export async function evidenceProvider(kind: string, opts: { log: Logger; simulatedHostData?: string | undefined }): Promise<EvidenceProvider> {
  switch (kind) {
    case 'auto':
      return (await selectProvider({ log: opts.log, allowSimulated: false })).provider
    case 'configfs-tsm':
      return new ConfigfsTsmProvider({ log: opts.log })
    case 'attestation-agent':
      return new AttestationAgentProvider({ log: opts.log })
    case 'simulated': {
      const hex = opts.simulatedHostData ?? ''
      if (hex !== '' && !/^[0-9a-fA-F]{64}$/.test(hex)) {
        throw new UsageError('--simulated-hostdata must be hex of 32 bytes', { field: 'simulated-hostdata', value: hex })
      }
      return SimulatedProvider.create({ log: opts.log, hostData: hex === '' ? undefined : Buffer.from(hex, 'hex') })
    }
    default:
      throw new UsageError(`--evidence ${kind}: expected auto, configfs-tsm, attestation-agent or simulated`, { field: 'evidence', value: kind })
  }
}

