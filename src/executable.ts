// Whether a path names a file this process may execute: how `run --dataplane auto` finds
// Envoy and how the Envoy supervisor finds setpriv.

import { accessSync, constants } from 'node:fs'

export function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}
