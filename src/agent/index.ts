// The guest daemon: boot sequence, health, metrics, the data-plane choice.
export { MeshDaemon } from './daemon.js'
export type { DaemonOptions, DaemonState, StateListener } from './daemon.js'
export { AgentError } from './errors.js'
export type { AgentCode } from './errors.js'
export { renderMetrics } from './metrics.js'
export type { AgentGauges } from './metrics.js'
export { startAdminServer } from './admin-server.js'
export type { AdminHandlers, AdminServer } from './admin-server.js'
export { chooseDataPlane, createDataPlane, findEnvoy, pendingLimitsFromArgs, positiveIntegerFlag } from './dataplane-select.js'
export { exemptCoordinator } from './coordinator-exempt.js'
export { measuredConfig, type MeasuredConfig } from './measured-config.js'
// attested-certs.js is imported on its own, only with --coordinator: it loads gRPC.
export type { DataPlaneChoice, DataPlaneKind } from './dataplane-select.js'
