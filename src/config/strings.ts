// The established string syntax (Contrast's env values, also accepted as flags) →
// raw form. Only syntax is judged here: separators, field counts, booleans.

import type { IssueSink, Origin, RawEgressEntry, RawIngress, RawIngressEntry, RawTransparentEgress } from './raw.js'

const ENTRY_SEPARATOR = '##'
const FIELD_SEPARATOR = '#'

/** Splits `a##b`, reporting empty entries; returns the non-empty ones with their index. */
function entries(value: string, source: string, issues: IssueSink): { text: string; index: number }[] {
  const out: { text: string; index: number }[] = []
  value.split(ENTRY_SEPARATOR).forEach((text, index) => {
    if (text === '') issues.push({ source, entry: text, index, reason: 'EMPTY_ENTRY', message: `entry ${index} is empty (stray "##"?)` })
    else out.push({ text, index })
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

/** `true` / `false`, nothing else: a typo must not silently mean either. */
export function parseBoolean(value: string, at: Origin, issues: IssueSink): boolean | undefined {
  if (value === 'true') return true
  if (value === 'false') return false
  issues.push({ ...at, reason: 'INVALID_BOOLEAN', message: `"${value}" is not true or false` })
  return undefined
}

export function ingressFromString(value: string, source: string, issues: IssueSink): RawIngress {
  const trimmed = value.trim()
  const at: Origin = { source }
  if (trimmed === 'DISABLED') return { at, disabled: true, entries: [] }
  if (trimmed === '') return { at, disabled: false, entries: [] }
  const out: RawIngressEntry[] = []
  for (const { text, index } of entries(trimmed, source, issues)) {
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
  return { at, disabled: false, entries: out }
}

export function egressFromString(value: string, source: string, issues: IssueSink): RawEgressEntry[] {
  const trimmed = value.trim()
  if (trimmed === '') {
    // Contrast's verifier rejects an empty egress annotation too: it is set, so it was meant to say something.
    issues.push({ source, entry: value, reason: 'EMPTY_VALUE', message: 'egress is set but empty; unset it for no egress' })
    return []
  }
  const out: RawEgressEntry[] = []
  for (const { text, index } of entries(trimmed, source, issues)) {
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
