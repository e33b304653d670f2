// The established string syntax (Contrast's env values, also accepted as flags) →
// raw form. Only syntax is judged here: separators, field counts, booleans. It is read
// as Contrast's sidecar reads it: empty entries are skipped (Contrast's own tooling
// writes `##admin#9901#true` and trailing `##`), booleans are Go's strconv.ParseBool.

import type { IssueSink, Origin, RawEgressEntry, RawIngress, RawIngressEntry, RawTransparentEgress } from './raw.js'

const ENTRY_SEPARATOR = '##'
const FIELD_SEPARATOR = '#'

/** Splits `a##b` and skips empty entries (as Contrast does); indexes count every entry, empty ones included. */
function entries(value: string): { text: string; index: number }[] {
  const out: { text: string; index: number }[] = []
  value.split(ENTRY_SEPARATOR).forEach((text, index) => {
    if (text !== '') out.push({ text, index })
  })
  return out
}

function fields(text: string, index: number, source: string, shape: string, issues: IssueSink): string[] | undefined {
  const parts = text.split(FIELD_SEPARATOR)
  if (parts.length !== 3) {
    issues.push({
      source,
      entry: text,
      index,
      reason: 'WRONG_FIELD_COUNT',
      message: `entry "${text}" has ${parts.length} "#"-separated fields, expected 3 (${shape})`,
    })
    return undefined
  }
  return parts
}

const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True'])
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False'])

/**
 * Exactly the spellings Go's strconv.ParseBool accepts (Contrast parses the flag with
 * it); anything else — `yes`, ` true`, `tRuE` — is refused, as Contrast refuses it.
 */
export function parseBoolean(value: string, at: Origin, issues: IssueSink): boolean | undefined {
  if (TRUE.has(value)) return true
  if (FALSE.has(value)) return false
  issues.push({
    ...at,
    reason: 'INVALID_BOOLEAN',
    message: `"${value}" is not a boolean (1 t T TRUE true True, or 0 f F FALSE false False)`,
  })
  return undefined
}

export const DISABLED = 'DISABLED'

export function ingressFromString(value: string, source: string, issues: IssueSink): RawIngress {
  const trimmed = value.trim()
  const at: Origin = { source }
  if (trimmed === DISABLED) return { at, disabled: true, entries: [] }
  if (trimmed === '') return { at, disabled: false, entries: [] }
  const out: RawIngressEntry[] = []
  let disabled = false
  for (const { text, index } of entries(trimmed)) {
    if (text === DISABLED) {
      // e.g. `DISABLED##admin#9901#true`: Contrast's sidecar would fail on the entry
      // "DISABLED"; here both halves are kept so the error names the contradiction.
      disabled = true
      continue
    }
    const parts = fields(text, index, source, 'name#port#true|false', issues)
    if (parts === undefined) continue
    const [name, port, flag] = parts as [string, string, string]
    const eAt: Origin = { source, entry: text, index }
    const passthrough = parseBoolean(flag, eAt, issues)
    out.push({
      at: eAt,
      name: { value: name, at: eAt },
      port: { value: port, at: eAt },
      mode: passthrough === undefined ? undefined : { value: passthrough ? 'passthrough' : 'tls', at: eAt },
    })
  }
  return { at, disabled, entries: out }
}

/** An empty value means no egress, as in Contrast's sidecar. */
export function egressFromString(value: string, source: string, issues: IssueSink): RawEgressEntry[] {
  const trimmed = value.trim()
  const out: RawEgressEntry[] = []
  for (const { text, index } of entries(trimmed)) {
    const parts = fields(text, index, source, 'name#127.x.y.z:port#host:port', issues)
    if (parts === undefined) continue
    const [name, listen, remote] = parts as [string, string, string]
    const eAt: Origin = { source, entry: text, index }
    out.push({ at: eAt, name: { value: name, at: eAt }, listen: { value: listen, at: eAt }, remote: { value: remote, at: eAt } })
  }
  return out
}

/** Comma-separated; blanks around entries are tolerated, empty entries are not. */
export function allowListFromString(value: string, source: string, issues: IssueSink): RawTransparentEgress['allowPlaintext'] {
  if (value.trim() === '') return []
  const out: { value: string; at: Origin }[] = []
  value.split(',').forEach((raw, index) => {
    const text = raw.trim()
    if (text === '') issues.push({ source, entry: raw, index, reason: 'EMPTY_ENTRY', message: `allow-list entry ${index} is empty` })
    else out.push({ value: text, at: { source, entry: text, index } })
  })
  return out
}
