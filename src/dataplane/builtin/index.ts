// The builtin (Node tls/net) data plane. Imported on its own so a daemon running Envoy
// never loads it.
export { createBuiltinDataPlane } from './builtin-dataplane.js'
export type { BoundAddress, BuiltinDataPlane, BuiltinDataPlaneOptions, FailureReason } from './builtin-dataplane.js'
