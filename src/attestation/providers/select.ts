// Picks the evidence provider by what the machine offers, in order of
// trust in the path to the TEE: the kernel's configfs-tsm interface, then the
// CoCo attestation agent's socket. The simulation is used only when asked
// for AND no TEE device is visible: a real TEE with no usable interface is an
// error, never a silent fallback to evidence nobody should trust.

import fsp from 'node:fs/promises'
import type { Logger } from 'pino'
import { isMeshError } from '../../errors.js'
import type { EvidenceProvider } from '../provider.js'
import { AttestationAgentProvider, DEFAULT_AA_SOCKET } from './attestation-agent.js'
import { ConfigfsTsmProvider, DEFAULT_TSM_REPORT_ROOT, type TsmFs } from './configfs-tsm.js'
import { ProviderError } from './errors.js'
import { SimulatedProvider, type SimulatedOptions } from './simulated.js'

/** Paths whose presence means the guest runs in a TEE (SEV-SNP or TDX guest drivers). */
export const DEFAULT_TEE_DEVICES: readonly string[] = ['/dev/sev-guest', '/dev/tdx_guest', '/sys/devices/platform/sev-guest']

export interface SelectOptions {
  readonly log: Logger
  readonly tsmRoot?: string
  readonly tsmFs?: TsmFs
  readonly aaSocket?: string
  readonly aaTimeoutMs?: number
  /** Permit the simulated provider when no TEE is present. Default false. */
  readonly allowSimulated?: boolean
  readonly simulated?: SimulatedOptions
  readonly teeDevices?: readonly string[]
  /** Presence test; default: the path can be stat'ed (anything but ENOENT counts as present). */
  readonly exists?: (path: string) => Promise<boolean>
}

export interface Selection {
  readonly provider: EvidenceProvider
  /** Why this one, for logs and the health endpoint. */
  readonly reason: string
}

export async function selectProvider(opts: SelectOptions): Promise<Selection> {
  const log = opts.log.child({ component: 'attestation', step: 'select-provider' })
  const exists = opts.exists ?? defaultExists
  const tsmRoot = opts.tsmRoot ?? DEFAULT_TSM_REPORT_ROOT
  const aaSocket = opts.aaSocket ?? DEFAULT_AA_SOCKET
  const rejected: string[] = []
  let tsmFailure: unknown

  if (await exists(tsmRoot)) {
    const tsm = new ConfigfsTsmProvider({ log: opts.log, root: tsmRoot, fs: opts.tsmFs })
    try {
      const tee = await tsm.probe()
      return chosen(log, tsm, `configfs-tsm at ${tsmRoot} reports ${tee}`, { tee })
    } catch (err) {
      if (!isMeshError(err)) throw err
      tsmFailure = err
      rejected.push(`configfs-tsm at ${tsmRoot}: ${err.code}`)
      log.warn({ err, tsmRoot }, 'configfs-tsm present but unusable')
    }
  } else {
    rejected.push(`no configfs-tsm at ${tsmRoot}`)
  }

  if (await exists(aaSocket)) {
    const aa = new AttestationAgentProvider({ log: opts.log, socketPath: aaSocket, timeoutMs: opts.aaTimeoutMs })
    return chosen(log, aa, `attestation-agent socket at ${aaSocket}`, { aaSocket })
  }
  rejected.push(`no attestation-agent socket at ${aaSocket}`)

  const devices: string[] = []
  for (const d of opts.teeDevices ?? DEFAULT_TEE_DEVICES) if (await exists(d)) devices.push(d)
  if (devices.length > 0) {
    throw new ProviderError('PROVIDER_NONE', `a TEE is present (${devices.join(', ')}) but no evidence interface is usable: ${rejected.join('; ')}`, {
      teeDevices: devices,
      rejected,
    }, tsmFailure === undefined ? undefined : { cause: tsmFailure })
  }

  if (opts.allowSimulated === true) {
    const sim = await SimulatedProvider.create(opts.simulated)
    const selection = chosen(log, sim, 'no TEE present and simulation explicitly allowed', { rejected })
    log.warn('evidence will be SIMULATED: peers must be configured to trust the simulated root')
    return selection
  }
  throw new ProviderError('PROVIDER_NONE', `no TEE evidence interface (${rejected.join('; ')}) and simulation not allowed`, { rejected, teeDevices: [] })
}

function chosen(log: Logger, provider: EvidenceProvider, reason: string, extra: Record<string, unknown>): Selection {
  log.info({ provider: provider.kind, reason, ...extra }, 'evidence provider selected')
  return { provider, reason }
}

async function defaultExists(path: string): Promise<boolean> {
  try {
    await fsp.stat(path)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT'
  }
}
