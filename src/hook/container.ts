// Acting on one container being created: its init process, held by a pidfd from the
// first look to the last call, so a pid reused in between can never be the target.
//
// Making a guest directory visible in the container follows NVIDIA's guest hook
// (nvidia-container-cli --pid=<pid> <bundle>/rootfs): enter the container's mount
// namespace through its init process and mount below `<bundle>/rootfs`, where the
// container's root still is at prestart (pivot_root comes later; a mount made there is
// at `/…` afterwards). Nothing relies on mount propagation from the guest's namespace.
//
//   guest ns:      open_tree(CLONE) of the source, mount_setattr(ro, nosuid, nodev, noexec, private)
//   container ns:  setns; walk <bundle>/rootfs/contrast/<dir> without symlinks (openat2),
//                  mkdir what is missing; move_mount the clone onto it
//
// A bind mount of the *directory* (not of its files) keeps renewals visible: the daemon
// replaces files by rename inside the same directory.

import { lstatSync, mkdirSync, statSync } from 'node:fs'
import { HookError } from './errors.js'
import {
  AT_FDCWD,
  cloneReadOnly,
  closeFd,
  enterMountNamespace,
  makeDirAt,
  moveMountOnto,
  openDirBeneath,
  pidfdOpen,
  pidfdSignal,
} from './syscalls.js'

export interface ExposedDir {
  /** The directory in the guest (the daemon writes there). */
  readonly source: string
  /** Mode for the source when the hook has to create it (the daemon's own mode). */
  readonly sourceMode: number
  /** Where it appears in the container, as path components below its root. */
  readonly target: readonly string[]
}

export interface ContainerProcess {
  /**
   * Binds every source, read-only, at its target below `rootfs` (creating a missing
   * source first). Enters the container's mount namespace: call once, last.
   */
  expose(rootfs: string, dirs: readonly ExposedDir[]): void
  /** SIGKILL before the workload ran: the runtime's next step fails and the container does not start. */
  kill(): void
  close(): void
}

const SIGKILL = 9

export function openContainerProcess(pid: number): ContainerProcess {
  let pidfd: number
  try {
    pidfd = pidfdOpen(pid)
  } catch (cause) {
    throw new HookError('HOOK_BAD_PROCESS', `process ${pid} does not exist`, { pid }, { cause })
  }
  try {
    let theirs: number
    try {
      theirs = statSync(`/proc/${pid}/ns/mnt`).ino
    } catch (cause) {
      throw new HookError('HOOK_BAD_PROCESS', `cannot read the mount namespace of process ${pid}`, { pid }, { cause })
    }
    // Still the same process (a live process keeps its pid), so the namespace read was its own.
    pidfdSignal(pidfd, 0)
    if (theirs === statSync('/proc/self/ns/mnt').ino) {
      // Mounting "into the container" would change the guest's own tree.
      throw new HookError('HOOK_BAD_PROCESS', `process ${pid} shares the hook's mount namespace; it is not a container being created`, { pid })
    }
  } catch (err) {
    closeFd(pidfd)
    throw err
  }
  return {
    expose: (rootfs, dirs) => expose(pidfd, rootfs, dirs),
    kill: () => pidfdSignal(pidfd, SIGKILL),
    close: () => closeFd(pidfd),
  }
}

/** Creates a missing source directory (before the daemon's first write) and insists it is a real one. */
function prepareSource(dir: ExposedDir): void {
  mkdirSync(dir.source, { recursive: true, mode: dir.sourceMode })
  const st = lstatSync(dir.source)
  if (!st.isDirectory()) throw new HookError('HOOK_UNSAFE_PATH', `${dir.source} is not a directory`, { path: dir.source })
}

function expose(pidfd: number, rootfs: string, dirs: readonly ExposedDir[]): void {
  const trees: number[] = []
  const opened: number[] = []
  try {
    for (const d of dirs) prepareSource(d)
    for (const d of dirs) trees.push(cloneReadOnly(d.source))
    enterMountNamespace(pidfd)
    const root = openDirBeneath(AT_FDCWD, rootfs, { beneath: false })
    opened.push(root)
    dirs.forEach((d, i) => {
      let cur = root
      const walked: string[] = []
      for (const name of d.target) {
        walked.push(name)
        makeDirAt(cur, name, 0o755)
        try {
          cur = openDirBeneath(cur, name, { beneath: true })
        } catch (cause) {
          const errno = (cause as HookError).details?.['errno']
          if (errno === 'ELOOP' || errno === 'ENOTDIR' || errno === 'EXDEV') {
            throw new HookError('HOOK_UNSAFE_PATH', `/${walked.join('/')} in the container is a symlink or not a directory`, { path: `/${walked.join('/')}`, errno }, { cause })
          }
          throw cause
        }
        opened.push(cur)
      }
      moveMountOnto(trees[i]!, cur, `/${d.target.join('/')}`)
    })
  } finally {
    for (const fd of [...opened, ...trees]) closeFd(fd)
  }
}
