// The Envoy data plane: bootstrap rendering, SDS files and the process supervisor.
// Imported on its own so a daemon running the builtin data plane never loads it.
export { EnvoyDataPlane, DEFAULT_BACKOFF, DEFAULT_ENVOY_ADMIN_PORT, DEFAULT_ENVOY_WORK_DIR } from './dataplane.js'
export type { BackoffOptions, EnvoyDataPlaneOptions } from './dataplane.js'
export { renderBootstrap } from './bootstrap.js'
export type { RenderOptions as EnvoyRenderOptions } from './bootstrap.js'
export { renderSdsResources, writeSdsResources } from './sds.js'
export { EnvoyError } from './errors.js'
export type { EnvoyCode } from './errors.js'
