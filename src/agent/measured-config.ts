// `run --initdata`: the mesh configuration and the coordinator pin come from the pod's
// Kata initdata, whose digest the TEE reports (SNP HOST_DATA, TDX MRCONFIGID), so the
// untrusted host can neither change nor drop them. Nothing else may set them then: a
// flag next to the measured config would be an unmeasured override.

import { readFileSync } from 'node:fs'
import {
  digestForField,
  initdataDigest,
  meshSectionFromInitdata,
  parseInitdataToml,
  type MeshConfig,
} from '../config/index.js'
import { AgentError } from './errors.js'
import { findInitdataBlockDevice, readInitdataBlockDevice } from './initdata-device.js'

export interface MeasuredConfig {
  readonly source: string
  readonly config: MeshConfig
  /** The full initdata digest (algorithm's length). */
  readonly digest: Uint8Array
  readonly digestHex: string
  /** What `--coordinator…` would have said, from the measured pin. */
  readonly attestedValues: {
    readonly coordinator: string
    readonly 'coordinator-identity': string
    readonly 'coordinator-measurement'?: readonly string[]
    readonly 'coordinator-rtmr'?: readonly string[]
    readonly evidence?: string
    readonly 'simulated-hostdata'?: string
  }
}

const PINNED_FLAGS = ['coordinator', 'coordinator-identity', 'coordinator-measurement', 'coordinator-rtmr', 'simulated-hostdata'] as const

export function measuredConfig(parsed: {
  readonly from: 'flags' | 'file' | 'env'
  readonly values: Readonly<Record<string, unknown>>
}): MeasuredConfig | undefined {
  const source = parsed.values['initdata']
  if (source === undefined) return undefined
  if (typeof source !== 'string' || source === '') throw new AgentError('AGENT_BAD_ARGS', '--initdata needs a value', { field: 'initdata' })
  if (parsed.from !== 'env') {
    throw new AgentError('AGENT_BAD_ARGS', `--initdata excludes config from ${parsed.from}: the measured config is the only one`, {
      field: 'initdata',
      from: parsed.from,
    })
  }
  for (const f of PINNED_FLAGS) {
    if (parsed.values[f] !== undefined) {
      throw new AgentError('AGENT_BAD_ARGS', `--initdata excludes --${f}: the coordinator pin is part of the measured config`, { field: f })
    }
  }
  let path = source
  if (source === 'auto') {
    const found = findInitdataBlockDevice()
    if (found === undefined) throw new AgentError('AGENT_BAD_ARGS', '--initdata auto: no initdata block device found', { field: 'initdata' })
    path = found
  }
  const doc = path.endsWith('.toml') ? parseInitdataToml(readFileSync(path)) : readInitdataBlockDevice(path)
  const section = meshSectionFromInitdata(doc)
  const digest = initdataDigest(doc)
  const { host, port } = section.coordinator.address
  const evidence = parsed.values['evidence']
  return {
    source: path,
    config: section.config,
    digest,
    digestHex: Buffer.from(digest).toString('hex'),
    attestedValues: {
      coordinator: `${host.includes(':') ? `[${host}]` : host}:${port}`,
      'coordinator-identity': `policy:${section.coordinator.identity}`,
      'coordinator-measurement': section.coordinator.measurements,
      'coordinator-rtmr': section.coordinator.rtmr,
      evidence: typeof evidence === 'string' ? evidence : undefined,
      // Without a TEE the simulated report carries the digest where SNP would, so the
      // coordinator's policy lookup sees what `podvm-mesh initdata` printed.
      'simulated-hostdata': evidence === 'simulated' ? Buffer.from(digestForField(digest, 'snp-host-data')).toString('hex') : undefined,
    },
  }
}
