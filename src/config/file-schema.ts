// The structured config file (JSON or TOML): its zod schema is the one statement of
// the file's shape. Values are only typed here; validate.ts judges them exactly as it
// judges the string syntax.

import { parse as parseToml, TomlError } from 'smol-toml'
import { z } from 'zod'
import type { ConfigIssue, ConfigReason } from './errors.js'
import type { IssueSink, Origin, RawMeshConfig } from './raw.js'

export const MeshConfigFileSchema = z.strictObject({
  ingress: z
    .strictObject({
      disabled: z.boolean().optional(),
      ports: z
        .array(
          z.strictObject({
            name: z.string(),
            port: z.number(),
            mode: z.enum(['tls', 'passthrough']),
          }),
        )
        .optional(),
    })
    .optional(),
  egress: z.array(z.strictObject({ name: z.string(), listen: z.string(), remote: z.string(), meshCaOnly: z.boolean().optional() })).optional(),
  transparentEgress: z
    .strictObject({
      enabled: z.boolean().optional(),
      allowPlaintext: z.array(z.string()).optional(),
    })
    .optional(),
  admin: z.strictObject({ port: z.number() }).optional(),
})

export type MeshConfigFile = z.infer<typeof MeshConfigFileSchema>

export type FileFormat = 'json' | 'toml'

export const FILE_SOURCE = 'file'

/** `ingress.ports[1].port` */
function pathText(path: readonly PropertyKey[]): string {
  let out = ''
  for (const k of path) out += typeof k === 'number' ? `[${k}]` : `${out === '' ? '' : '.'}${String(k)}`
  return out
}

function fieldSource(path: readonly PropertyKey[]): string {
  return path.length === 0 ? FILE_SOURCE : `${FILE_SOURCE}:${pathText(path)}`
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root
  for (const k of path) {
    if (typeof v !== 'object' || v === null) return undefined
    v = (v as Record<PropertyKey, unknown>)[k]
  }
  return v
}

function lastIndex(path: readonly PropertyKey[]): number | undefined {
  for (let i = path.length - 1; i >= 0; i--) if (typeof path[i] === 'number') return path[i] as number
  return undefined
}

/** How much of a value an issue shows (the whole file may be one value). */
const MAX_ENTRY_CHARS = 200

/** A value as an issue shows it: bounded, and never throws, whatever the input's shape. */
export function entryText(v: unknown): string | undefined {
  if (v === undefined) return undefined
  if (typeof v === 'number') return String(v)
  if (v instanceof Date) return v.toISOString()
  let text: string
  try {
    text = typeof v === 'string' ? v : typeof v === 'bigint' ? v.toString() : (JSON.stringify(v) ?? typeName(v))
  } catch {
    // Deeper than JSON.stringify's stack (TOML dotted keys nest without limit).
    text = `(${typeName(v)} nested too deeply to show)`
  }
  return text.length > MAX_ENTRY_CHARS ? `${text.slice(0, MAX_ENTRY_CHARS - 1)}…` : text
}

function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  if (typeof v === 'number' && !Number.isFinite(v)) return `non-finite number ${v}`
  if (v instanceof Date) return 'date'
  return typeof v
}

function at(path: readonly PropertyKey[], value: unknown): Origin {
  return { source: fieldSource(path), entry: entryText(value), index: lastIndex(path) }
}

function shapeIssues(doc: unknown, zodIssues: readonly z.core.$ZodIssue[]): ConfigIssue[] {
  const out: ConfigIssue[] = []
  for (const zi of zodIssues) {
    if (zi.code === 'unrecognized_keys') {
      for (const key of zi.keys) {
        const path = [...zi.path, key]
        out.push({ ...at(path, undefined), reason: 'UNKNOWN_KEY', message: `unknown key "${pathText(path)}"` })
      }
      continue
    }
    const value = valueAt(doc, zi.path)
    let reason: ConfigReason
    let message: string
    if (value === undefined) {
      reason = 'MISSING_FIELD'
      message = `"${pathText(zi.path)}" is required`
    } else if (zi.code === 'invalid_value') {
      reason = 'INVALID_VALUE'
      message = `${entryText(value)} is not one of ${zi.values.map((v) => JSON.stringify(v)).join(', ')}`
    } else if (zi.code === 'invalid_type') {
      reason = 'WRONG_TYPE'
      message = `expected ${zi.expected}, got ${typeName(value)}`
    } else {
      reason = 'INVALID_VALUE'
      message = zi.message
    }
    out.push({ ...at(zi.path, value), reason, message })
  }
  return out
}

function parseDocument(text: string, format: FileFormat, issues: IssueSink): unknown {
  try {
    return format === 'json' ? JSON.parse(text) : parseToml(text)
  } catch (err) {
    const where = err instanceof TomlError ? ` at line ${err.line}, column ${err.column}` : ''
    const first = err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)
    issues.push({ source: FILE_SOURCE, reason: 'FILE_SYNTAX', message: `not valid ${format.toUpperCase()}${where}: ${first}` })
    return undefined
  }
}

/** Text of a config file → raw form; undefined when syntax or shape is wrong (issues say why). */
export function rawFromFileText(text: string, format: FileFormat, issues: IssueSink): RawMeshConfig | undefined {
  const doc = parseDocument(text, format, issues)
  if (doc === undefined) return undefined
  return rawFromFileDocument(doc, issues)
}

/** A parsed config document (the tables of a file, or of an initdata mesh section) → raw form. */
export function rawFromFileDocument(doc: unknown, issues: IssueSink): RawMeshConfig | undefined {
  const parsed = MeshConfigFileSchema.safeParse(doc)
  if (!parsed.success) {
    issues.push(...shapeIssues(doc, parsed.error.issues))
    return undefined
  }
  const f = parsed.data
  const field = <T>(path: readonly PropertyKey[], value: T) => ({ value, at: at(path, value) })
  const ports = f.ingress?.ports ?? []
  const te = f.transparentEgress
  return {
    ingress:
      f.ingress === undefined
        ? undefined
        : {
            at: at(['ingress'], undefined),
            disabled: f.ingress.disabled ?? false,
            entries: ports.map((p, i) => ({
              at: at(['ingress', 'ports', i], undefined),
              name: field(['ingress', 'ports', i, 'name'], p.name),
              port: field(['ingress', 'ports', i, 'port'], p.port),
              mode: field(['ingress', 'ports', i, 'mode'], p.mode),
            })),
          },
    egress: (f.egress ?? []).map((e, i) => ({
      at: at(['egress', i], undefined),
      name: field(['egress', i, 'name'], e.name),
      listen: field(['egress', i, 'listen'], e.listen),
      remote: field(['egress', i, 'remote'], e.remote),
      meshCaOnly: e.meshCaOnly === undefined ? undefined : field(['egress', i, 'meshCaOnly'], e.meshCaOnly),
    })),
    transparentEgress:
      te === undefined
        ? undefined
        : {
            enabled: te.enabled === undefined ? undefined : field(['transparentEgress', 'enabled'], te.enabled),
            allowAt: at(['transparentEgress', 'allowPlaintext'], undefined),
            allowPlaintext: (te.allowPlaintext ?? []).map((s, i) => field(['transparentEgress', 'allowPlaintext', i], s)),
          },
    admin: f.admin === undefined ? undefined : { port: field(['admin', 'port'], f.admin.port) },
  }
}
