// The data-plane component's public surface.

export type { DataPlane, DataPlaneState, DataPlaneStats, TlsMaterial } from './dataplane.js'
export type {
  DataPlaneSpec,
  EgressCaptureListenerSpec,
  EgressListenerSpec,
  IngressListenerSpec,
  ListenerSpec,
  PendingLimits,
  TimeoutsSpec,
} from './spec.js'
export { DEFAULT_PENDING_LIMITS, DEFAULT_TIMEOUTS, deriveSpec } from './spec.js'
export { DataPlaneError, isDataPlaneError } from './errors.js'
export type { DataPlaneCode } from './errors.js'
// The implementations are imported from './builtin/index.js' and './envoy/index.js',
// so a process loads only the data plane it runs.
