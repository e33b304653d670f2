// The intermediate form between syntax (env strings, flags, a JSON/TOML file) and the
// validated MeshConfig. Every front end produces this; validate.ts is the only place
// that judges values, so a string and a file entry get the same checks and reasons.

import type { ConfigIssue } from './errors.js'

/** Where an issue about a value is reported. */
export type Origin = Pick<ConfigIssue, 'source' | 'entry' | 'index'>

export interface RawField<T> {
  readonly value: T
  readonly at: Origin
}

export interface RawIngressEntry {
  readonly at: Origin
  readonly name: RawField<string>
  /** Text from strings, a number from files. */
  readonly port: RawField<string | number>
  /** undefined: the flag was invalid and that issue is already recorded. */
  readonly mode: RawField<'tls' | 'passthrough'> | undefined
}

export interface RawIngress {
  readonly at: Origin
  readonly disabled: boolean
  readonly entries: readonly RawIngressEntry[]
}

export interface RawEgressEntry {
  readonly at: Origin
  readonly name: RawField<string>
  /** `127.x.y.z:port` */
  readonly listen: RawField<string>
  /** `host:port` */
  readonly remote: RawField<string>
  /** File form: `meshCaOnly = true` (the string form names entries in a separate list). */
  readonly meshCaOnly?: RawField<boolean>
}

export interface RawTransparentEgress {
  /** undefined value: it was given but invalid, and that issue is already recorded. */
  readonly enabled: RawField<boolean | undefined> | undefined
  readonly allowAt: Origin
  readonly allowPlaintext: readonly RawField<string>[]
}

export interface RawMeshConfig {
  /** undefined: not configured, i.e. enabled with no exceptions. */
  readonly ingress?: RawIngress
  readonly egress: readonly RawEgressEntry[]
  readonly transparentEgress?: RawTransparentEgress
  /** Present when the admin port was configured explicitly (and is therefore exposed). */
  readonly admin?: { readonly port: RawField<string | number> }
  /** Egress entry names whose peer is checked against the mesh CA only (no secure naming). */
  readonly egressMeshCaOnly?: readonly RawField<string>[]
}

/** Issues found while reading the syntax; validation appends to the same list. */
export type IssueSink = ConfigIssue[]
