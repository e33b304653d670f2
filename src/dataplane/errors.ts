// Typed failures of the data plane. The code is the log field; per-connection
// failures are counted by their reason in DataPlaneStats.failures instead.

import { isMeshError, MeshError } from '../errors.js'

export type DataPlaneCode =
  /** libc could not be loaded through koffi (not Linux, or no glibc). */
  | 'DATAPLANE_FFI'
  /** socket(2) failed. */
  | 'DATAPLANE_SOCKET'
  /** setsockopt(2) failed (typically EPERM without CAP_NET_ADMIN). */
  | 'DATAPLANE_SOCKOPT'
  /** A listener could not be bound; details name the listener. */
  | 'DATAPLANE_BIND'
  /** The TLS material could not be turned into a SecureContext. */
  | 'DATAPLANE_CREDENTIALS'
  /** An operation is not allowed in the current lifecycle state. */
  | 'DATAPLANE_STATE'
  /** The spec cannot be served by this data plane. */
  | 'DATAPLANE_SPEC'

export class DataPlaneError extends MeshError<DataPlaneCode> {}

export function isDataPlaneError(err: unknown): err is DataPlaneError {
  return isMeshError(err) && err.code.startsWith('DATAPLANE_')
}
