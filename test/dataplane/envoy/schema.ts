// A strict validator for Envoy v3 JSON (the proto3 JSON mapping, as Envoy parses its
// bootstrap: unknown fields are errors). Types come from Envoy's own .proto files
// shipped with @grpc/grpc-js-xds; files are loaded lazily, by the package named in a
// message's full name or an Any's @type URL, so only what a config references is parsed.
//
// Checked: every key is a field (json_name lowerCamel or the original snake_case),
// JSON type per proto scalar type (64-bit ints also as strings, bytes as base64),
// enum names/numbers exist, oneofs have at most one member set, Any @type resolves and
// its content is validated recursively, well-known types in their special JSON forms
// (Duration, Timestamp, wrappers, Struct/Value/ListValue, FieldMask, Empty, Any),
// fields marked `deprecated` are rejected, and a subset of protoc-gen-validate rules:
// oneof `(validate.required)`, `message.required`, `string.min_len`, numeric bounds
// (`lt/lte/gt/gte`), `repeated.min_items`, `enum.not_in`, `duration` gt/gte.
// Not checked: the rest of PGV (string patterns, well_known_regex, `in` lists, map
// key/value rules, …), cross-field semantics Envoy enforces in C++ (e.g. cluster type
// vs. load_assignment, unique listener names), and whether an extension is compiled
// into a given Envoy binary.

import { existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import protobuf from 'protobufjs'

export interface SchemaIssue {
  /** JSON path, e.g. `$.static_resources.listeners[0].address`. */
  readonly path: string
  readonly reason:
    | 'UNKNOWN_FIELD'
    | 'DUPLICATE_FIELD'
    | 'WRONG_JSON_TYPE'
    | 'BAD_VALUE'
    | 'UNKNOWN_ENUM'
    | 'ONEOF_CONFLICT'
    | 'UNKNOWN_TYPE_URL'
    | 'MISSING_TYPE_URL'
    | 'DEPRECATED_FIELD'
    | 'PGV'
  readonly message: string
}

const require = createRequire(import.meta.url)
const XDS_DEPS = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps')
const INCLUDE_DIRS = [
  join(XDS_DEPS, 'envoy-api'),
  join(XDS_DEPS, 'xds'),
  join(XDS_DEPS, 'googleapis'),
  join(XDS_DEPS, 'protoc-gen-validate'),
  // google/protobuf/descriptor.proto (the other well-known types are bundled).
  dirname(require.resolve('protobufjs/package.json')),
]

const TYPE_URL_PREFIX = 'type.googleapis.com/'
const MAX_DEPTH = 64

let root: protobuf.Root | undefined
const loadedPackages = new Set<string>()

function getRoot(): protobuf.Root {
  if (root !== undefined) return root
  const r = new protobuf.Root()
  r.resolvePath = (_origin: string, target: string): string => {
    for (const dir of INCLUDE_DIRS) {
      const p = join(dir, target)
      if (existsSync(p)) return p
    }
    return target
  }
  root = r
  return r
}

/** Loads every .proto of the package's directory (envoy.a.b.v3 → envoy/a/b/v3/). */
function loadPackage(pkg: string): void {
  if (loadedPackages.has(pkg)) return
  loadedPackages.add(pkg)
  const rel = pkg.split('.').join('/')
  for (const dir of INCLUDE_DIRS) {
    const abs = join(dir, rel)
    if (!existsSync(abs)) continue
    const files = readdirSync(abs)
      .filter((f) => f.endsWith('.proto'))
      .map((f) => `${rel}/${f}`)
    if (files.length > 0) {
      getRoot().loadSync(files, { keepCase: true })
      addNewerFields(pkg)
      getRoot().resolveAll()
    }
    return
  }
}

/**
 * Fields the pinned Envoy (1.40) has and the vendored protos predate. Numbers, types and
 * enum values as Envoy 1.40's own descriptors give them (read from the binary); PGV rules
 * of these fields are not checked.
 */
function addNewerFields(pkg: string): void {
  if (pkg !== 'envoy.extensions.filters.network.tcp_proxy.v3') return
  const ns = getRoot().lookup(pkg)
  if (!(ns instanceof protobuf.Namespace)) return
  const tcpProxy = ns.lookupType('TcpProxy')
  if (tcpProxy.fields['upstream_connect_mode'] !== undefined) return
  ns.add(new protobuf.Enum('UpstreamConnectMode', { IMMEDIATE: 0, ON_DOWNSTREAM_DATA: 1, ON_DOWNSTREAM_TLS_HANDSHAKE: 2 }))
  for (const field of [
    new protobuf.Field('upstream_connect_mode', 21, 'UpstreamConnectMode'),
    new protobuf.Field('max_early_data_bytes', 22, 'google.protobuf.UInt32Value'),
  ]) {
    tcpProxy.add(field)
    // resolveAll() skips what it resolved before: resolve the newcomers here.
    field.resolve()
  }
}

/** Proto files parsed so far (relative to their include directory), for tests of the lazy loading. */
export function loadedProtoFiles(): string[] {
  return getRoot().files.map((f) => {
    const dir = INCLUDE_DIRS.find((d) => f.startsWith(`${d}/`))
    return dir === undefined ? f : f.slice(dir.length + 1)
  })
}

/** Finds a message type by full name, loading its package on demand. */
export function lookupMessage(fullName: string): protobuf.Type | undefined {
  const r = getRoot()
  const find = (): protobuf.Type | undefined => {
    try {
      const t = r.lookup(fullName)
      return t instanceof protobuf.Type ? t : undefined
    } catch {
      return undefined
    }
  }
  const found = find()
  if (found !== undefined) return found
  // Message names are CamelCase, package segments lower case; nested messages
  // (Cluster.LbSubsetConfig) sit below the first CamelCase segment.
  const parts = fullName.split('.')
  const firstType = parts.findIndex((p) => /^[A-Z]/.test(p))
  if (firstType <= 0) return undefined
  loadPackage(parts.slice(0, firstType).join('.'))
  return find()
}

/** protoc's json_name: drop underscores, upper-case the letter after each. */
function jsonName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase())
}

type FieldIndex = Map<string, protobuf.Field>
const fieldIndexes = new WeakMap<protobuf.Type, FieldIndex>()
function fieldIndex(t: protobuf.Type): FieldIndex {
  let idx = fieldIndexes.get(t)
  if (idx === undefined) {
    idx = new Map()
    for (const f of t.fieldsArray) {
      idx.set(f.name, f)
      idx.set(jsonName(f.name), f)
      const custom = opt(f, 'json_name')
      if (typeof custom === 'string') idx.set(custom, f)
    }
    fieldIndexes.set(t, idx)
  }
  return idx
}

/** Validates `value` as the JSON form of message `typeName`; returns every issue found. */
export function validateMessage(typeName: string, value: unknown): SchemaIssue[] {
  const t = lookupMessage(typeName)
  if (t === undefined) throw new Error(`unknown message type ${typeName}`)
  const issues: SchemaIssue[] = []
  new Validator(issues).message(t, value, '$', 0)
  return issues
}

/** The Any form: `{ "@type": ..., ...fields }`. */
export function validateAny(value: unknown): SchemaIssue[] {
  const issues: SchemaIssue[] = []
  new Validator(issues).any(value, '$', 0)
  return issues
}

const INT32 = new Set(['int32', 'sint32', 'sfixed32'])
const UINT32 = new Set(['uint32', 'fixed32'])
const INT64 = new Set(['int64', 'sint64', 'sfixed64'])
const UINT64 = new Set(['uint64', 'fixed64'])

const WRAPPERS: Record<string, string> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
}

/** Messages whose JSON form is not an object of fields. */
const SPECIAL_JSON = new Set([
  ...Object.keys(WRAPPERS),
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.FieldMask',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
])

const DURATION_RE = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/
const MAX_DURATION_SECONDS = 315_576_000_000
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$|^[A-Za-z0-9_-]*$/

function fullName(t: protobuf.ReflectionObject): string {
  return t.fullName.replace(/^\./, '')
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v
}

function opt(o: { options?: Record<string, unknown> | undefined }, key: string): unknown {
  return o.options?.[key]
}

class Validator {
  readonly #issues: SchemaIssue[]
  constructor(issues: SchemaIssue[]) {
    this.#issues = issues
  }

  #add(path: string, reason: SchemaIssue['reason'], message: string): void {
    this.#issues.push({ path, reason, message })
  }

  any(value: unknown, path: string, depth: number): void {
    if (!isObject(value)) return this.#add(path, 'WRONG_JSON_TYPE', `Any must be an object, got ${describe(value)}`)
    const url = value['@type']
    if (typeof url !== 'string') return this.#add(path, 'MISSING_TYPE_URL', 'Any without "@type"')
    const slash = url.lastIndexOf('/')
    const name = url.slice(slash + 1)
    if (slash < 0 || !url.startsWith(TYPE_URL_PREFIX)) {
      return this.#add(`${path}["@type"]`, 'UNKNOWN_TYPE_URL', `type URL ${url} does not start with ${TYPE_URL_PREFIX}`)
    }
    const t = lookupMessage(name)
    if (t === undefined) return this.#add(`${path}["@type"]`, 'UNKNOWN_TYPE_URL', `no message ${name} for ${url}`)
    const rest = Object.fromEntries(Object.entries(value).filter(([k]) => k !== '@type'))
    if (SPECIAL_JSON.has(fullName(t)) || fullName(t) === 'google.protobuf.Any') {
      // Special JSON forms travel under "value" inside an Any.
      for (const k of Object.keys(rest)) {
        if (k !== 'value') this.#add(`${path}.${k}`, 'UNKNOWN_FIELD', `Any of ${fullName(t)} takes only "value"`)
      }
      if ('value' in rest) this.message(t, rest['value'], `${path}.value`, depth + 1)
      return
    }
    this.message(t, rest, path, depth + 1)
  }

  message(t: protobuf.Type, value: unknown, path: string, depth: number): void {
    if (depth > MAX_DEPTH) return this.#add(path, 'BAD_VALUE', `nesting deeper than ${MAX_DEPTH}`)
    const name = fullName(t)
    if (this.#wellKnown(name, value, path, depth)) return
    if (!isObject(value)) return this.#add(path, 'WRONG_JSON_TYPE', `${name} must be an object, got ${describe(value)}`)
    const idx = fieldIndex(t)
    const seen = new Map<protobuf.Field, string>()
    const oneofSet = new Map<string, string>()
    for (const [key, v] of Object.entries(value)) {
      const p = `${path}.${key}`
      const field = idx.get(key)
      if (field === undefined) {
        this.#add(p, 'UNKNOWN_FIELD', `${name} has no field "${key}"`)
        continue
      }
      const other = seen.get(field)
      if (other !== undefined) {
        this.#add(p, 'DUPLICATE_FIELD', `"${key}" and "${other}" are the same field of ${name}`)
        continue
      }
      seen.set(field, key)
      if (opt(field, 'deprecated') === true) {
        this.#add(p, 'DEPRECATED_FIELD', `${name}.${field.name} is deprecated`)
      }
      // proto3 JSON: null means "default", which Envoy accepts; it sets no oneof member.
      if (v === null && fullName(field.resolvedType ?? t) !== 'google.protobuf.Value') continue
      if (field.partOf !== null && field.partOf !== undefined) {
        const prior = oneofSet.get(field.partOf.name)
        if (prior !== undefined) {
          this.#add(p, 'ONEOF_CONFLICT', `oneof ${field.partOf.name} of ${name} already has "${prior}"`)
        } else {
          oneofSet.set(field.partOf.name, key)
        }
      }
      this.#field(field, v, p, depth)
    }
    // PGV: required oneofs and required message fields.
    for (const o of t.oneofsArray) {
      if (opt(o, '(validate.required)') === true && !oneofSet.has(o.name)) {
        this.#add(path, 'PGV', `${name}: one of ${o.oneof.join(', ')} is required`)
      }
    }
    for (const f of t.fieldsArray) {
      // Inside a oneof, PGV applies a field's rules only when that member is the one set.
      if (f.partOf != null) continue
      if (opt(f, '(validate.rules).message.required') === true && !seen.has(f)) {
        this.#add(`${path}.${f.name}`, 'PGV', `${name}.${f.name} is required`)
      }
    }
  }

  #field(field: protobuf.Field, v: unknown, path: string, depth: number): void {
    if (field.map) {
      if (!isObject(v)) return this.#add(path, 'WRONG_JSON_TYPE', `map ${field.name} must be an object, got ${describe(v)}`)
      const keyType = (field as unknown as protobuf.MapField).keyType
      for (const [k, item] of Object.entries(v)) {
        if (keyType !== 'string') this.#scalar(keyType, k, `${path}[${JSON.stringify(k)}]`, undefined)
        this.#single(field, item, `${path}[${JSON.stringify(k)}]`, depth)
      }
      return
    }
    if (field.repeated) {
      if (!Array.isArray(v)) return this.#add(path, 'WRONG_JSON_TYPE', `repeated ${field.name} must be an array, got ${describe(v)}`)
      const min = opt(field, '(validate.rules).repeated.min_items')
      if (typeof min === 'number' && v.length < min) {
        this.#add(path, 'PGV', `${field.name} needs at least ${min} items, has ${v.length}`)
      }
      v.forEach((item, i) => this.#single(field, item, `${path}[${i}]`, depth))
      return
    }
    this.#single(field, v, path, depth)
  }

  #single(field: protobuf.Field, v: unknown, path: string, depth: number): void {
    const rt = field.resolvedType
    if (rt instanceof protobuf.Type) {
      if (fullName(rt) === 'google.protobuf.Any') return this.any(v, path, depth)
      this.message(rt, v, path, depth + 1)
      if (fullName(rt) === 'google.protobuf.Duration' && typeof v === 'string') this.#durationRules(field, v, path)
      return
    }
    if (rt instanceof protobuf.Enum) return this.#enum(rt, v, path, field)
    this.#scalar(field.type, v, path, field)
  }

  #enum(e: protobuf.Enum, v: unknown, path: string, field: protobuf.Field | undefined): void {
    const name = fullName(e)
    if (name === 'google.protobuf.NullValue') {
      if (v !== null && v !== 'NULL_VALUE') this.#add(path, 'UNKNOWN_ENUM', `NullValue must be null`)
      return
    }
    let num: number | undefined
    if (typeof v === 'string') {
      num = e.values[v]
      if (num === undefined) return this.#add(path, 'UNKNOWN_ENUM', `${name} has no value ${JSON.stringify(v)}`)
    } else if (typeof v === 'number' && Number.isInteger(v)) {
      // Proto3 enums are open, but an undefined number in a config is a mistake.
      if (e.valuesById[v] === undefined) return this.#add(path, 'UNKNOWN_ENUM', `${name} has no value number ${v}`)
      num = v
    } else {
      return this.#add(path, 'WRONG_JSON_TYPE', `enum ${name} must be a name or number, got ${describe(v)}`)
    }
    const notIn = field === undefined ? undefined : opt(field, '(validate.rules).enum.not_in')
    const banned = Array.isArray(notIn) ? notIn : notIn === undefined ? [] : [notIn]
    if (banned.includes(num)) this.#add(path, 'PGV', `${name} value ${JSON.stringify(v)} is not allowed here`)
  }

  #scalar(type: string, v: unknown, path: string, field: protobuf.Field | undefined): void {
    const bad = (want: string): void => this.#add(path, 'WRONG_JSON_TYPE', `${type} must be ${want}, got ${describe(v)}`)
    switch (type) {
      case 'string':
        if (typeof v !== 'string') return bad('a string')
        this.#stringRules(field, v, path)
        return
      case 'bool':
        if (typeof v !== 'boolean') return bad('a boolean')
        return
      case 'bytes':
        if (typeof v !== 'string') return bad('a base64 string')
        if (!BASE64_RE.test(v)) this.#add(path, 'BAD_VALUE', 'bytes must be base64')
        return
      case 'double':
      case 'float':
        if (typeof v === 'number') return this.#numberRules(field, type, v, path)
        if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return
        if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return this.#numberRules(field, type, Number(v), path)
        return bad('a number')
    }
    let n: bigint
    if (typeof v === 'number' && Number.isInteger(v)) n = BigInt(v)
    else if (typeof v === 'string' && /^-?\d+$/.test(v)) n = BigInt(v)
    else return bad('an integer (number or decimal string)')
    const [lo, hi] = INT32.has(type)
      ? [-(2n ** 31n), 2n ** 31n - 1n]
      : UINT32.has(type)
        ? [0n, 2n ** 32n - 1n]
        : INT64.has(type)
          ? [-(2n ** 63n), 2n ** 63n - 1n]
          : UINT64.has(type)
            ? [0n, 2n ** 64n - 1n]
            : [undefined, undefined]
    if (lo === undefined || hi === undefined) return this.#add(path, 'BAD_VALUE', `unsupported scalar type ${type}`)
    if (n < lo || n > hi) return this.#add(path, 'BAD_VALUE', `${type} out of range: ${String(v)}`)
    this.#numberRules(field, type, Number(n), path)
  }

  #stringRules(field: protobuf.Field | undefined, v: string, path: string): void {
    if (field === undefined) return
    const min = opt(field, '(validate.rules).string.min_len')
    if (typeof min === 'number' && [...v].length < min) this.#add(path, 'PGV', `${field.name} shorter than ${min}`)
    const minBytes = opt(field, '(validate.rules).string.min_bytes')
    if (typeof minBytes === 'number' && Buffer.byteLength(v) < minBytes) this.#add(path, 'PGV', `${field.name} shorter than ${minBytes} B`)
  }

  #numberRules(field: protobuf.Field | undefined, type: string, v: number, path: string): void {
    if (field === undefined) return
    const rule = (k: string): unknown => opt(field, `(validate.rules).${type}.${k}`)
    const check = (k: string, ok: (bound: number) => boolean): void => {
      const bound = rule(k)
      if (typeof bound === 'number' && !ok(bound)) this.#add(path, 'PGV', `${field.name} = ${v} violates ${k} ${bound}`)
    }
    check('lt', (b) => v < b)
    check('lte', (b) => v <= b)
    check('gt', (b) => v > b)
    check('gte', (b) => v >= b)
  }

  #durationRules(field: protobuf.Field, v: string, path: string): void {
    const m = DURATION_RE.exec(v)
    if (m === null) return
    const ns = (BigInt(m[2] ?? '0') * 1_000_000_000n + BigInt((m[3] ?? '').padEnd(9, '0') || '0')) * (m[1] ? -1n : 1n)
    const bound = (k: string): bigint | undefined => {
      const s = opt(field, `(validate.rules).duration.${k}.seconds`)
      const n = opt(field, `(validate.rules).duration.${k}.nanos`)
      if (s === undefined && n === undefined) return undefined
      return BigInt(Number(s ?? 0)) * 1_000_000_000n + BigInt(Number(n ?? 0))
    }
    const gt = bound('gt')
    if (gt !== undefined && !(ns > gt)) this.#add(path, 'PGV', `${field.name} = ${v} must be > ${gt} ns`)
    const gte = bound('gte')
    if (gte !== undefined && !(ns >= gte)) this.#add(path, 'PGV', `${field.name} = ${v} must be >= ${gte} ns`)
  }

  /** Returns true when `name` is a well-known type with a special JSON form (handled here). */
  #wellKnown(name: string, v: unknown, path: string, depth: number): boolean {
    const wrapped = WRAPPERS[name]
    if (wrapped !== undefined) {
      this.#scalar(wrapped, v, path, undefined)
      return true
    }
    switch (name) {
      case 'google.protobuf.Duration': {
        const m = typeof v === 'string' ? DURATION_RE.exec(v) : null
        if (m === null) this.#add(path, 'BAD_VALUE', `Duration must be a string like "1.5s", got ${JSON.stringify(v)}`)
        else if (Number(m[2]) > MAX_DURATION_SECONDS) this.#add(path, 'BAD_VALUE', `Duration ${String(v)} out of range`)
        return true
      }
      case 'google.protobuf.Timestamp':
        if (typeof v !== 'string' || !TIMESTAMP_RE.test(v)) this.#add(path, 'BAD_VALUE', `Timestamp must be RFC 3339`)
        return true
      case 'google.protobuf.FieldMask':
        if (typeof v !== 'string') this.#add(path, 'WRONG_JSON_TYPE', `FieldMask must be a string`)
        return true
      case 'google.protobuf.Struct':
        if (!isObject(v)) this.#add(path, 'WRONG_JSON_TYPE', `Struct must be an object, got ${describe(v)}`)
        return true
      case 'google.protobuf.ListValue':
        if (!Array.isArray(v)) this.#add(path, 'WRONG_JSON_TYPE', `ListValue must be an array, got ${describe(v)}`)
        return true
      case 'google.protobuf.Value':
        return true
      case 'google.protobuf.Any':
        this.any(v, path, depth)
        return true
      default:
        return false
    }
  }
}
