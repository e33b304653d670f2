// Public parsing entry points: env (Contrast names, then legacy EDG_ names), string
// values, and config files. All are pure except meshConfigFromFile, which only adds
// the read. Each collects every issue of its input before throwing one ConfigError.

import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import { configInvalid, isConfigError, type ConfigIssue } from './errors.js'
import { rawFromFileDocument, rawFromFileText, type FileFormat } from './file-schema.js'
import type { IssueSink, RawMeshConfig, RawTransparentEgress } from './raw.js'
import { allowListFromString, egressFromString, ingressFromString, parseBoolean } from './strings.js'
import type { EgressRule, IngressConfig, MeshConfig } from './types.js'
import { validateRaw } from './validate.js'

/** Env names: Contrast's current name first, then the RFC 005-era legacy name. */
export const ENV_NAMES = {
  ingress: ['CONTRAST_INGRESS_PROXY_CONFIG', 'EDG_INGRESS_PROXY_CONFIG'],
  egress: ['CONTRAST_EGRESS_PROXY_CONFIG', 'EDG_EGRESS_PROXY_CONFIG'],
  adminPort: ['CONTRAST_ADMIN_PORT', 'EDG_ADMIN_PORT'],
  /** Ours (design feature 4); Contrast has no transparent egress. */
  transparentEgress: ['PODVM_MESH_TRANSPARENT_EGRESS'],
  allowPlaintext: ['PODVM_MESH_EGRESS_PLAINTEXT'],
  /** Ours: egress entry names checked against the mesh CA only, comma-separated. */
  egressMeshCaOnly: ['PODVM_MESH_EGRESS_MESH_CA_ONLY'],
} as const

/** A string-syntax value and the name it came from (env var or flag). */
export interface SourcedValue<T = string> {
  readonly value: T
  readonly source: string
}

/** The string-syntax inputs of one config; env and flags both reduce to this. */
export interface StringInputs {
  readonly ingress?: SourcedValue
  readonly egress?: SourcedValue
  readonly adminPort?: SourcedValue
  /** A string from env (`true`/`false`), a boolean from a flag. */
  readonly transparentEgress?: SourcedValue<string | boolean>
  readonly allowPlaintext?: SourcedValue
  /** Comma-separated egress entry names. */
  readonly egressMeshCaOnly?: SourcedValue
}

export function rawFromStrings(inputs: StringInputs, issues: IssueSink): RawMeshConfig {
  let transparentEgress: RawTransparentEgress | undefined
  if (inputs.transparentEgress !== undefined || inputs.allowPlaintext !== undefined) {
    const te = inputs.transparentEgress
    const teAt = te === undefined ? undefined : { source: te.source, entry: String(te.value) }
    transparentEgress = {
      enabled:
        te === undefined || teAt === undefined
          ? undefined
          : { value: typeof te.value === 'boolean' ? te.value : parseBoolean(te.value, teAt, issues), at: teAt },
      allowAt: { source: inputs.allowPlaintext?.source ?? ENV_NAMES.allowPlaintext[0] },
      allowPlaintext:
        inputs.allowPlaintext === undefined ? [] : allowListFromString(inputs.allowPlaintext.value, inputs.allowPlaintext.source, issues),
    }
  }
  let admin: RawMeshConfig['admin']
  if (inputs.adminPort !== undefined) {
    const { value, source } = inputs.adminPort
    // Empty means unset, as in Contrast (its tooling passes the annotation through only when non-empty).
    if (value.trim() !== '') admin = { port: { value: value.trim(), at: { source, entry: value } } }
  }
  const { ingress, egress, egressMeshCaOnly } = inputs
  return {
    ingress: ingress === undefined ? undefined : ingressFromString(ingress.value, ingress.source, issues),
    egress: egress === undefined ? [] : egressFromString(egress.value, egress.source, issues),
    transparentEgress,
    admin,
    egressMeshCaOnly: egressMeshCaOnly === undefined ? undefined : allowListFromString(egressMeshCaOnly.value, egressMeshCaOnly.source, issues),
  }
}

/** Current name wins; the legacy name is read when the current one is unset; different values conflict. */
function fromEnv(env: NodeJS.ProcessEnv, names: readonly string[], issues: IssueSink): SourcedValue | undefined {
  const set = names.filter((n) => env[n] !== undefined).map((n) => ({ source: n, value: env[n] as string }))
  const first = set[0]
  if (first === undefined) return undefined
  for (const other of set.slice(1)) {
    if (other.value !== first.value) {
      issues.push({
        source: first.source,
        entry: first.value,
        reason: 'ENV_CONFLICT',
        message: `${first.source}="${first.value}" and ${other.source}="${other.value}" differ; set one, or both to the same value`,
      })
      return undefined
    }
  }
  return first
}

export function stringInputsFromEnv(env: NodeJS.ProcessEnv, issues: IssueSink): StringInputs {
  const pick = (names: readonly string[]) => fromEnv(env, names, issues)
  const inputs: Record<string, SourcedValue> = {}
  for (const key of Object.keys(ENV_NAMES) as (keyof typeof ENV_NAMES)[]) {
    const v = pick(ENV_NAMES[key])
    if (v !== undefined) inputs[key] = v
  }
  return inputs
}

function build(raw: (issues: IssueSink) => RawMeshConfig | undefined): MeshConfig {
  const issues: ConfigIssue[] = []
  const r = raw(issues)
  if (r === undefined) throw configInvalid(issues)
  return validateRaw(r, issues)
}

/**
 * The mesh config from the process environment: CONTRAST_* (or legacy EDG_*) strings
 * and PODVM_MESH_TRANSPARENT_EGRESS / PODVM_MESH_EGRESS_PLAINTEXT. Nothing set means
 * ingress mTLS on every port, no egress, admin on 127.0.0.1:15020.
 */
export function meshConfigFromEnv(env: NodeJS.ProcessEnv): MeshConfig {
  return build((issues) => rawFromStrings(stringInputsFromEnv(env, issues), issues))
}

/** The mesh config from string-syntax inputs (flags use this). */
export function meshConfigFromStrings(inputs: StringInputs): MeshConfig {
  return build((issues) => rawFromStrings(inputs, issues))
}

/** One ingress string. `adminPort`, when given, is the (exposed) admin port it must not collide with. */
export function parseIngress(
  value: string,
  options: { source?: string; adminPort?: number } = {},
): IngressConfig {
  const source = options.source ?? ENV_NAMES.ingress[0]
  return meshConfigFromStrings({
    ingress: { value, source },
    adminPort: options.adminPort === undefined ? undefined : { value: String(options.adminPort), source: 'adminPort' },
  }).ingress
}

/** One egress string. `adminPort`, when given, is the (exposed) admin port it must not collide with. */
export function parseEgress(
  value: string,
  options: { source?: string; adminPort?: number } = {},
): readonly EgressRule[] {
  const source = options.source ?? ENV_NAMES.egress[0]
  return meshConfigFromStrings({
    egress: { value, source },
    adminPort: options.adminPort === undefined ? undefined : { value: String(options.adminPort), source: 'adminPort' },
  }).egress
}

/** A config file's text; pure. Issues are reported as `file:<path.in.document>`. */
export function meshConfigFromText(text: string, format: FileFormat): MeshConfig {
  return build((issues) => rawFromFileText(text, format, issues))
}

/** The same for a document already parsed (the mesh tables of an initdata section). */
export function meshConfigFromDocument(doc: unknown): MeshConfig {
  return build((issues) => rawFromFileDocument(doc, issues))
}

export function fileFormatOf(path: string): FileFormat | undefined {
  const ext = extname(path).toLowerCase()
  return ext === '.json' ? 'json' : ext === '.toml' ? 'toml' : undefined
}

/** Reads a .json or .toml config file (synchronously: it is read once, before anything listens). */
export function meshConfigFromFile(path: string): MeshConfig {
  const format = fileFormatOf(path)
  if (format === undefined) {
    throw configInvalid(
      [{ source: 'file', entry: path, reason: 'FILE_FORMAT_UNKNOWN', message: `"${path}" must end in .json or .toml` }],
      { file: path },
    )
  }
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err))
    throw configInvalid([{ source: 'file', entry: path, reason: 'FILE_UNREADABLE', message: `cannot read "${path}": ${why}` }], {
      code: 'CONFIG_FILE_UNREADABLE',
      cause: err,
      file: path,
    })
  }
  try {
    return meshConfigFromText(text, format)
  } catch (err) {
    // Re-raise with the file name in the message and details; issues stay as they are.
    if (isConfigError(err)) throw configInvalid(err.issues, { file: path })
    throw err
  }
}
