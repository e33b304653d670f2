// Writing a file so that a reader sees the old content or the new one, never a part,
// and the new one survives a crash once this returns: the one implementation, for the
// certificate directory, Envoy's SDS files and bootstrap, the coordinator's state and
// the mesh status. Synchronous: the files are a few KiB, and a data plane's
// setCredentials must have its files in place when it returns.

import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/** Temp name in the same directory (rename must not cross file systems); dot-prefixed. */
function tempName(path: string): string {
  const slash = path.lastIndexOf('/')
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${process.pid}.tmp`
}

/**
 * Temp file, write, fsync, rename over `path`, fsync of the directory. On failure the
 * temp file is removed and the error (from node:fs) is thrown; `path` is untouched.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  const tmp = tempName(path)
  try {
    // A leftover from a crash would keep its old mode through open(O_TRUNC).
    rmSync(tmp, { force: true })
    const fd = openSync(tmp, 'w', mode)
    try {
      fchmodSync(fd, mode) // the mode asked for, whatever the umask
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
      let off = 0
      while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
  } catch (err) {
    rmSync(tmp, { force: true })
    throw err
  }
  fsyncDir(dirname(path))
}

function fsyncDir(dir: string): void {
  // Makes the rename durable; not every file system allows fsync on a directory.
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // The rename already happened; durability across a crash is the only loss.
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
