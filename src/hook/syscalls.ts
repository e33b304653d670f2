// The Linux calls the hook needs and Node does not offer, through koffi to libc:
// pidfds (a process reference that cannot be confused by pid reuse), setns into a
// container's mount namespace, openat2 (walk a container path without following
// symlinks), and the new mount API (clone a directory as a detached mount, make it
// read-only, attach it in another namespace). Needs Linux >= 5.12 (mount_setattr).
//
// The new syscalls have one number on every architecture (asm-generic, >= 424), so
// they go through syscall(2) and do not depend on the glibc version.

import { constants } from 'node:fs'
import koffi from 'koffi'
import { HookError } from './errors.js'

const SYS = { pidfd_send_signal: 424, open_tree: 428, move_mount: 429, pidfd_open: 434, openat2: 437, mount_setattr: 442 } as const

export const AT_FDCWD = -100
const AT_EMPTY_PATH = 0x1000
const O_PATH = 0o10000000
const O_CLOEXEC = 0o2000000
const OPEN_TREE_CLONE = 1
const MOVE_MOUNT_F_EMPTY_PATH = 0x4
const MOVE_MOUNT_T_EMPTY_PATH = 0x40
const RESOLVE_NO_MAGICLINKS = 0x02
const RESOLVE_NO_SYMLINKS = 0x04
const RESOLVE_BENEATH = 0x08
const MOUNT_ATTR_RDONLY = 0x1
const MOUNT_ATTR_NOSUID = 0x2
const MOUNT_ATTR_NODEV = 0x4
const MOUNT_ATTR_NOEXEC = 0x8
const MS_PRIVATE = 1 << 18
const CLONE_FS = 0x200
const CLONE_NEWNS = 0x20000

interface Libc {
  /** Variadic: each argument after the number is a koffi type name followed by its value. */
  syscall(nr: number, ...typedArgs: unknown[]): number | bigint
  unshare(flags: number): number
  setns(fd: number, nstype: number): number
  mkdirat(dirFd: number, path: string, mode: number): number
  close(fd: number): number
}

let libc: Libc | undefined

function load(): Libc {
  if (libc !== undefined) return libc
  try {
    const lib = koffi.load('libc.so.6')
    libc = {
      syscall: lib.func('long syscall(long nr, ...)'),
      unshare: lib.func('int unshare(int flags)'),
      setns: lib.func('int setns(int fd, int nstype)'),
      mkdirat: lib.func('int mkdirat(int dirfd, const char *path, uint32_t mode)'),
      close: lib.func('int close(int fd)'),
    }
    return libc
  } catch (cause) {
    throw new HookError('HOOK_SYSCALL', 'cannot load libc.so.6 through koffi', { call: 'dlopen' }, { cause })
  }
}

export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) if (value === errno) return name
  return `errno ${errno}`
}

function check(result: number | bigint, call: string, details: Record<string, unknown> = {}): number {
  const r = Number(result)
  if (r < 0) {
    const errno = errnoName(koffi.errno())
    const where = details['path'] !== undefined ? ` ${String(details['path'])}` : ''
    throw new HookError('HOOK_SYSCALL', `${call}${where}: ${errno}`, { call, errno, ...details })
  }
  return r
}

export function closeFd(fd: number): void {
  load().close(fd)
}

/** A reference to a process that stays valid (and never names another one) until closed. */
export function pidfdOpen(pid: number): number {
  return check(load().syscall(SYS.pidfd_open, 'int', pid, 'uint', 0), 'pidfd_open', { pid })
}

export function pidfdSignal(pidfd: number, signal: number): void {
  check(load().syscall(SYS.pidfd_send_signal, 'int', pidfd, 'int', signal, 'void *', null, 'uint', 0), 'pidfd_send_signal', { signal })
}

/**
 * A detached copy of the mount at `path` (the directory as a bind mount), read-only,
 * nosuid, nodev, noexec and private, before anyone can see it: there is no moment at
 * which the container could find it writable.
 */
export function cloneReadOnly(path: string): number {
  const c = load()
  const fd = check(c.syscall(SYS.open_tree, 'int', AT_FDCWD, 'str', path, 'uint', OPEN_TREE_CLONE | O_CLOEXEC), 'open_tree', { path })
  // struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd }
  const attr = Buffer.alloc(32)
  attr.writeBigUInt64LE(BigInt(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC), 0)
  attr.writeBigUInt64LE(BigInt(MS_PRIVATE), 16)
  try {
    check(c.syscall(SYS.mount_setattr, 'int', fd, 'str', '', 'uint', AT_EMPTY_PATH, 'void *', attr, 'size_t', 32), 'mount_setattr', { path })
  } catch (err) {
    c.close(fd)
    throw err
  }
  return fd
}

/** Attaches a detached mount (from cloneReadOnly) on the directory `targetFd` refers to. */
export function moveMountOnto(treeFd: number, targetFd: number, path: string): void {
  check(
    load().syscall(SYS.move_mount, 'int', treeFd, 'str', '', 'int', targetFd, 'str', '', 'uint', MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
    'move_mount',
    { path },
  )
}

/**
 * Moves the calling thread (Node's main thread, where synchronous calls run) into the
 * mount namespace of the process `pidfd` refers to. A thread that shares its fs
 * attributes with others cannot change mount namespace, so it unshares them first;
 * libuv's worker threads stay where they were: after this only synchronous calls.
 */
export function enterMountNamespace(pidfd: number): void {
  const c = load()
  check(c.unshare(CLONE_FS), 'unshare(CLONE_FS)')
  check(c.setns(pidfd, CLONE_NEWNS), 'setns(CLONE_NEWNS)')
}

/** Opens an existing directory (O_PATH) below `dirFd` without following any symlink. */
export function openDirBeneath(dirFd: number, name: string, opts: { beneath: boolean }): number {
  // struct open_how { u64 flags, mode, resolve }
  const how = Buffer.alloc(24)
  how.writeBigUInt64LE(BigInt(O_PATH | O_CLOEXEC | constants.O_DIRECTORY | constants.O_NOFOLLOW), 0)
  how.writeBigUInt64LE(BigInt(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | (opts.beneath ? RESOLVE_BENEATH : 0)), 16)
  return check(load().syscall(SYS.openat2, 'int', dirFd, 'str', name, 'void *', how, 'size_t', 24), 'openat2', { path: name })
}

/** mkdirat; false when it exists already (whatever it is: the open that follows decides). */
export function makeDirAt(dirFd: number, name: string, mode: number): boolean {
  const r = load().mkdirat(dirFd, name, mode)
  if (r === 0) return true
  const errno = errnoName(koffi.errno())
  if (errno === 'EEXIST') return false
  throw new HookError('HOOK_SYSCALL', `mkdirat ${name}: ${errno}`, { call: 'mkdirat', errno, path: name })
}
