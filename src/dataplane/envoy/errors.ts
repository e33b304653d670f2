// Failures specific to running the data plane through Envoy. Lifecycle and spec
// failures shared with the builtin data plane use DataPlaneError instead.

import { MeshError } from '../../errors.js'

export type EnvoyCode =
  /** A render option is unusable (relative SDS directory, admin port taken by a listener). */
  | 'ENVOY_OPTION'
  /** The envoy executable could not be started (not found, not executable). */
  | 'ENVOY_SPAWN'
  /** Bootstrap or SDS files could not be written. */
  | 'ENVOY_WRITE'
  /** Envoy's admin API answered with something that is not what it documents. */
  | 'ENVOY_ADMIN'

export class EnvoyError extends MeshError<EnvoyCode> {}
