// The mesh section of a pod's initdata: `[data]."podvm-mesh.toml"` holds a TOML mesh
// config in exactly the structure the config file parser accepts, plus one table of
// its own, `[coordinator]` (where the coordinator is and which policy hash it must
// attest with). The coordinator table is read here; everything else goes through the
// file parser unchanged, so the file schema stays as it is and an initdata section is
// judged by the same code as a config file.

import { parse as parseToml, stringify as stringifyToml, TomlError } from 'smol-toml'
import { parseHost, splitHostPort, hostText } from './address.js'
import { configInvalid, isConfigError, type ConfigIssue } from './errors.js'
import { entryText } from './file-schema.js'
import type { InitdataDocument } from './initdata.js'
import { InitdataError } from './initdata-errors.js'
import { meshConfigFromDocument } from './parse.js'
import { RTMR_PIN } from './rtmr-pin.js'
import type { MeshConfig, Port } from './types.js'

/** The `[data]` key of the mesh section. */
export const MESH_INITDATA_KEY = 'podvm-mesh.toml'

const SOURCE = `initdata:${MESH_INITDATA_KEY}`

export interface CoordinatorPin {
  /** host:port of the coordinator's mesh API; host is a DNS name or an IP literal. */
  readonly address: { readonly host: string; readonly port: Port }
  /**
   * The coordinator's identity: its initdata digest (Contrast's "policy hash"), lower-case
   * hex of 32, 48 or 64 bytes. Its evidence must report this (padded/truncated) as
   * HOST_DATA / MRCONFIGID.
   */
  readonly identity: string
  /**
   * Launch measurements the coordinator's evidence must report (SNP MEASUREMENT, TDX
   * MRTD; hex of 48 bytes). The identity alone names a configuration the host chose at
   * launch; these name the code that runs it.
   */
  readonly measurements?: readonly string[]
  /**
   * TDX: RTMR values the coordinator's evidence must report, as `<index>=<hex of 48 B>`
   * (several for one index = any of them). MRTD names only the firmware; a Kata TD's
   * kernel is in RTMR1 and its command line and initrd in RTMR2.
   */
  readonly rtmr?: readonly string[]
}

/**
 * Which workload this is: the names its certificate carries and its workload secret id,
 * as the coordinator manifest lists them. Measured with the rest, so two workloads with
 * the same mesh settings still have different policy hashes (the coordinator tells them
 * apart by that hash alone).
 */
export interface WorkloadIdentity {
  readonly sans: readonly string[]
  readonly workloadSecretId: string
}

export interface MeshSection {
  readonly config: MeshConfig
  readonly coordinator: CoordinatorPin
  readonly workload?: WorkloadIdentity
}

function workloadIdentity(value: unknown, issues: ConfigIssue[]): WorkloadIdentity | undefined {
  const source = `${SOURCE}:workload`
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    issues.push({ source, reason: 'WRONG_TYPE', message: 'workload must be a table' })
    return undefined
  }
  const table = value as Record<string, unknown>
  for (const key of Object.keys(table)) {
    if (key !== 'sans' && key !== 'workloadSecretId') issues.push({ source: `${source}.${key}`, reason: 'UNKNOWN_KEY', message: `unknown key "workload.${key}"` })
  }
  const sans = table['sans']
  const id = table['workloadSecretId']
  const sansOk = Array.isArray(sans) && sans.length > 0 && sans.every((s) => typeof s === 'string' && s !== '')
  if (!sansOk) issues.push({ source: `${source}.sans`, reason: 'WRONG_TYPE', message: 'sans must be a non-empty array of names' })
  if (typeof id !== 'string' || id === '') issues.push({ source: `${source}.workloadSecretId`, reason: 'WRONG_TYPE', message: 'workloadSecretId must be a non-empty string' })
  return sansOk && typeof id === 'string' && id !== '' ? { sans: sans as string[], workloadSecretId: id } : undefined
}

const IDENTITY = /^(?:[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$/

function coordinatorPin(value: unknown, issues: ConfigIssue[]): CoordinatorPin | undefined {
  const at = (field: string) => `${SOURCE}:coordinator${field === '' ? '' : `.${field}`}`
  if (value === undefined) {
    issues.push({ source: at(''), reason: 'MISSING_FIELD', message: 'the mesh section needs a [coordinator] table (address, identity)' })
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    issues.push({ source: at(''), reason: 'WRONG_TYPE', message: 'coordinator must be a table' })
    return undefined
  }
  const table = value as Record<string, unknown>
  for (const key of Object.keys(table)) {
    if (key !== 'address' && key !== 'identity' && key !== 'measurements' && key !== 'rtmr') issues.push({ source: at(key), reason: 'UNKNOWN_KEY', message: `unknown key "coordinator.${key}"` })
  }
  const address = parseAddress(table['address'], at('address'), issues)
  const identity = table['identity']
  let pinned: string | undefined
  if (identity === undefined) issues.push({ source: at('identity'), reason: 'MISSING_FIELD', message: '"coordinator.identity" is required' })
  else if (typeof identity !== 'string') issues.push({ source: at('identity'), reason: 'WRONG_TYPE', message: `expected string, got ${typeof identity}` })
  else if (!IDENTITY.test(identity.toLowerCase())) {
    issues.push({
      source: at('identity'),
      entry: identity,
      reason: 'INVALID_VALUE',
      message: 'identity must be the coordinator policy hash: hex of 32, 48 or 64 bytes',
    })
  } else pinned = identity.toLowerCase()
  const measurements = parseMeasurements(table['measurements'], at('measurements'), issues)
  const rtmr = parseRtmrPins(table['rtmr'], at('rtmr'), issues)
  if (address === undefined || pinned === undefined) return undefined
  return { address, identity: pinned, measurements, rtmr }
}

function parseRtmrPins(value: unknown, source: string, issues: ConfigIssue[]): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.length === 0) {
    issues.push({ source, reason: 'WRONG_TYPE', message: 'rtmr must be a non-empty array of "<index>=<hex>" strings' })
    return undefined
  }
  const out: string[] = []
  value.forEach((m, index) => {
    if (typeof m === 'string' && RTMR_PIN.test(m.toLowerCase())) out.push(m.toLowerCase())
    else issues.push({ source, index, entry: entryText(m), reason: 'INVALID_VALUE', message: 'an RTMR pin is "<index 0-3>=<hex of 48 bytes>"' })
  })
  return out.length === value.length ? out : undefined
}

const MEASUREMENT = /^[0-9a-f]{96}$/

function parseMeasurements(value: unknown, source: string, issues: ConfigIssue[]): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.length === 0) {
    issues.push({ source, reason: 'WRONG_TYPE', message: 'measurements must be a non-empty array of hex strings' })
    return undefined
  }
  const out: string[] = []
  value.forEach((m, index) => {
    if (typeof m === 'string' && MEASUREMENT.test(m.toLowerCase())) out.push(m.toLowerCase())
    else issues.push({ source, index, entry: entryText(m), reason: 'INVALID_VALUE', message: 'a measurement is hex of 48 bytes (SNP MEASUREMENT, TDX MRTD)' })
  })
  return out.length === value.length ? out : undefined
}

function parseAddress(value: unknown, source: string, issues: ConfigIssue[]): CoordinatorPin['address'] | undefined {
  if (value === undefined) {
    issues.push({ source, reason: 'MISSING_FIELD', message: '"coordinator.address" is required' })
    return undefined
  }
  if (typeof value !== 'string') {
    issues.push({ source, reason: 'WRONG_TYPE', message: `expected string, got ${typeof value}` })
    return undefined
  }
  const split = splitHostPort(value)
  if (!split.ok) {
    issues.push({ source, entry: value, reason: split.missingPort ? 'MISSING_PORT' : 'INVALID_HOST', message: split.message })
    return undefined
  }
  const host = parseHost(split.value.host, split.value.bracketed)
  if (!host.ok) {
    issues.push({ source, entry: value, reason: 'INVALID_HOST', message: host.message })
    return undefined
  }
  const portText = split.value.port
  if (!/^[0-9]{1,5}$/.test(portText)) {
    issues.push({ source, entry: value, reason: 'PORT_NOT_NUMERIC', message: `port "${portText}" is not a number` })
    return undefined
  }
  const port = Number(portText)
  if (port < 1 || port > 65535) {
    issues.push({ source, entry: value, reason: 'PORT_OUT_OF_RANGE', message: `port ${port} is not in 1..65535` })
    return undefined
  }
  return { host: hostText(host.value), port: port as Port }
}

/** `file:ingress.ports[0].port` (the file parser's naming) → `initdata:podvm-mesh.toml:ingress.ports[0].port`. */
function resourced(issue: ConfigIssue): ConfigIssue {
  const rest = issue.source === 'file' ? '' : issue.source.startsWith('file:') ? issue.source.slice('file'.length) : `:${issue.source}`
  return { ...issue, source: `${SOURCE}${rest}` }
}

/** The mesh section's text; every problem (coordinator and mesh config) in one ConfigError. */
export function parseMeshSection(text: string): MeshSection {
  let doc: Record<string, unknown>
  try {
    doc = parseToml(text) as Record<string, unknown>
  } catch (err) {
    const where = err instanceof TomlError ? ` at line ${err.line}, column ${err.column}` : ''
    const first = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)
    throw configInvalid([{ source: SOURCE, reason: 'FILE_SYNTAX', message: `not valid TOML${where}: ${first}` }], { file: SOURCE, cause: err })
  }
  const issues: ConfigIssue[] = []
  const { coordinator: rawCoordinator, workload: rawWorkload, ...meshPart } = doc
  const coordinator = coordinatorPin(rawCoordinator, issues)
  const workload = rawWorkload === undefined ? undefined : workloadIdentity(rawWorkload, issues)
  let config: MeshConfig | undefined
  try {
    config = meshConfigFromDocument(meshPart)
  } catch (err) {
    if (!isConfigError(err)) throw err
    issues.push(...err.issues.map(resourced))
  }
  if (issues.length > 0 || config === undefined || coordinator === undefined) throw configInvalid(issues, { file: SOURCE })
  return { config, coordinator, workload }
}

/** The mesh section of a document; INITDATA_NO_MESH_SECTION when `[data]` lacks it. */
export function meshSectionFromInitdata(doc: InitdataDocument): MeshSection {
  const text = doc.data[MESH_INITDATA_KEY]
  if (text === undefined) {
    throw new InitdataError('INITDATA_NO_MESH_SECTION', `initdata [data] has no "${MESH_INITDATA_KEY}"`, {
      key: MESH_INITDATA_KEY,
      keys: Object.keys(doc.data),
    })
  }
  return parseMeshSection(text)
}

function hostPortText(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/**
 * A MeshConfig and coordinator pin as mesh-section text; parseMeshSection(render(x))
 * gives x back. Defaults are left out, so the measured text says only what was chosen.
 */
export function renderMeshSection(section: MeshSection): string {
  const { config, coordinator } = section
  const doc: Record<string, unknown> = {
    coordinator: {
      address: hostPortText(coordinator.address.host, coordinator.address.port),
      identity: coordinator.identity,
      // smol-toml leaves out undefined values, as "defaults are left out" wants.
      measurements: coordinator.measurements,
      rtmr: coordinator.rtmr,
    },
  }
  if (section.workload !== undefined) doc['workload'] = { sans: [...section.workload.sans], workloadSecretId: section.workload.workloadSecretId }
  if (!config.ingress.enabled) doc['ingress'] = { disabled: true }
  else if (config.ingress.rules.length > 0) {
    doc['ingress'] = { ports: config.ingress.rules.map((r) => ({ name: r.name, port: r.port, mode: r.mode })) }
  }
  if (config.egress.length > 0) {
    doc['egress'] = config.egress.map((e) => ({
      name: e.name,
      listen: hostPortText(e.listen.address, e.listen.port),
      remote: hostPortText(e.remote.absolute === true ? `${e.remote.host}.` : e.remote.host, e.remote.port),
      ...(e.meshCaOnly === true ? { meshCaOnly: true } : {}),
    }))
  }
  if (config.transparentEgress.enabled) {
    doc['transparentEgress'] = {
      enabled: true,
      allowPlaintext: config.transparentEgress.allowPlaintext.map((d) =>
        d.port === undefined ? d.cidr : d.family === 6 ? `[${d.cidr}]:${d.port}` : `${d.cidr}:${d.port}`,
      ),
    }
  }
  if (config.admin.exposed) doc['admin'] = { port: config.admin.port }
  return stringifyToml(doc)
}
