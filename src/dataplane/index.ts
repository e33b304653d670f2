// The data-plane component's public surface.

export type { DataPlane, DataPlaneState, DataPlaneStats, TlsMaterial } from './dataplane.js'
export type {
  DataPlaneSpec,
  EgressCaptureListenerSpec,
  EgressListenerSpec,
  IngressListenerSpec,
  ListenerSpec,
  TimeoutsSpec,
} from './spec.js'
export { DEFAULT_TIMEOUTS, deriveSpec } from './spec.js'
export { DataPlaneError, isDataPlaneError } from './errors.js'
export type { DataPlaneCode } from './errors.js'
export { createBuiltinDataPlane } from './builtin/builtin-dataplane.js'
export type { BoundAddress, BuiltinDataPlane, BuiltinDataPlaneOptions, FailureReason } from './builtin/builtin-dataplane.js'
export { EnvoyDataPlane, DEFAULT_BACKOFF, DEFAULT_ENVOY_ADMIN_PORT, DEFAULT_ENVOY_WORK_DIR } from './envoy/supervisor.js'
export type { BackoffOptions, EnvoyDataPlaneOptions } from './envoy/supervisor.js'
export { renderBootstrap } from './envoy/bootstrap.js'
export type { RenderOptions as EnvoyRenderOptions } from './envoy/bootstrap.js'
export { renderSdsResources, writeSdsResources } from './envoy/sds.js'
export { EnvoyError } from './envoy/errors.js'
export type { EnvoyCode } from './envoy/errors.js'
