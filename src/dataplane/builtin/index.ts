// The builtin (Node tls/net) data plane. Imported on its own so a daemon running Envoy
// never loads it.
export { BuiltinDataPlane } from './dataplane.js'
export type { BoundAddress, BuiltinDataPlaneOptions } from './dataplane.js'
export type { FailureReason } from './connection.js'
