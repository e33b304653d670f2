// OCI containers for the lab: a tiny root file system copied from the host's own
// binaries (no registry image), a bundle whose config.json configures the guest hook at
// prestart exactly as kata-agent does (argv `<name> prestart`, no environment, the OCI
// state on stdin, 10 s), and runc to run it. runc lays a container out as kata-agent's
// rustjail does at prestart: the root is `<bundle>/rootfs` inside the container's own
// mount namespace, not yet pivoted. (Debian's crun 1.8 refuses hosts whose cgroup v2
// hierarchy has controllers in hybrid mode, as these build machines have.)

import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { accessSync, chmodSync, constants, copyFileSync, existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import { run, type ExecResult } from './topology.js'

export const HOOK_NAME = 'podvm-mesh-certs'
/** The runtime's limit on a hook, as kata-agent applies it to guest hooks. */
export const HOOK_TIMEOUT_S = 10

export interface OciMount {
  readonly destination: string
  readonly type: string
  readonly source: string
  readonly options?: readonly string[]
}

export interface BundleOptions {
  readonly id: string
  /** Bundles go to `<bundleRoot>/<id>` (kata-agent: /run/kata-containers/<id>). */
  readonly bundleRoot: string
  /** A root file system from buildLabRootfs; copied into the bundle. */
  readonly rootfs: string
  readonly args: readonly string[]
  readonly annotations?: Readonly<Record<string, string>>
  readonly mounts?: readonly OciMount[]
  /** The prestart hook file; omitted: no hook. */
  readonly hook?: string
  /** Join this network namespace (e.g. /run/netns/<name>); default: a new, empty one. */
  readonly netnsPath?: string
  readonly readonlyRoot?: boolean
}

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    try {
      accessSync(join(dir, bin), constants.X_OK)
      return join(dir, bin)
    } catch {
      // next
    }
  }
  return undefined
}

/** Why containers cannot run here, or undefined when they can. */
export function containersUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `platform is ${process.platform}, not linux`
  if (process.getuid?.() !== 0) return 'not running as root'
  if (which('runc') === undefined) return 'runc is not on PATH'
  if (which('ldd') === undefined) return 'ldd is not on PATH'
  return undefined
}

/**
 * Copies each host binary (by name, from PATH) and the shared libraries `ldd` names
 * into `dir`, at the same paths, plus the empty directories a container needs.
 */
export function buildLabRootfs(dir: string, binaries: readonly string[]): void {
  for (const d of ['proc', 'dev', 'sys', 'tmp', 'bin']) mkdirSync(join(dir, d), { recursive: true })
  const copy = (src: string, dest: string): void => {
    if (existsSync(join(dir, dest))) return
    mkdirSync(dirname(join(dir, dest)), { recursive: true })
    copyFileSync(realpathSync(src), join(dir, dest))
    chmodSync(join(dir, dest), 0o755)
  }
  for (const name of binaries) {
    const path = which(name)
    if (path === undefined) throw new Error(`buildLabRootfs: ${name} is not on PATH`)
    copy(path, join('bin', name))
    const libs = execFileSync('ldd', [path], { encoding: 'utf8' })
    for (const m of libs.matchAll(/(\/\S+)\s+\(0x/g)) copy(m[1]!, m[1]!)
  }
}

/** The OCI config kata-agent would hand its runtime, trimmed to what the lab needs. */
export function labConfig(o: BundleOptions): Record<string, unknown> {
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: o.args,
      env: ['PATH=/bin'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: o.readonlyRoot ?? true },
    hostname: o.id.slice(0, 32),
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      ...(o.mounts ?? []),
    ],
    hooks: o.hook === undefined ? undefined : { prestart: [{ path: o.hook, args: [HOOK_NAME, 'prestart'], env: [], timeout: HOOK_TIMEOUT_S }] },
    annotations: o.annotations ?? {},
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network', path: o.netnsPath }],
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      maskedPaths: ['/proc/kcore', '/proc/keys', '/sys/firmware'],
      readonlyPaths: ['/proc/sys', '/proc/sysrq-trigger'],
    },
  }
}

/** Writes `<bundleRoot>/<id>/{config.json,rootfs/}`; returns the bundle directory. */
export function writeBundle(o: BundleOptions): string {
  const bundle = join(o.bundleRoot, o.id)
  mkdirSync(bundle, { recursive: true })
  execFileSync('cp', ['-a', `${o.rootfs}/.`, join(bundle, 'rootfs')])
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(labConfig(o), null, 1))
  return bundle
}

/** `runc run` in the foreground until the container exits; then deletes it. */
export async function runContainer(bundle: string, id: string, opts: { timeoutMs?: number } = {}): Promise<ExecResult & { ms: number }> {
  const t0 = performance.now()
  const r = await run('runc', ['run', '--bundle', bundle, id], { timeoutMs: opts.timeoutMs ?? 30_000 })
  const ms = performance.now() - t0
  await run('runc', ['delete', '--force', id])
  return { ...r, ms }
}

/** `runc run` of a long-running container; stop() kills and deletes it. */
export function startContainer(bundle: string, id: string): { child: ChildProcess; exited: Promise<number>; stop(): Promise<void> } {
  const child = spawn('runc', ['run', '--bundle', bundle, id], { stdio: ['ignore', 'ignore', 'pipe'] })
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)))
  return {
    child,
    exited,
    async stop() {
      await run('runc', ['kill', id, 'KILL'])
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))])
      await run('runc', ['delete', '--force', id])
    },
  }
}

/**
 * A hook file for the lab: runs `podvm-mesh hook` from this build with the lab's
 * directories, records its exit code and stderr, and exits 0 — as kata-agent ignores a
 * hook's exit code, a runtime must not learn it here either: failing closed has to work
 * without it.
 */
export function writeLabHook(path: string, o: { cli: string; tlsDir: string; bundleRoot: string; record: string }): void {
  const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`
  writeFileSync(
    path,
    [
      '#!/bin/sh',
      `${q(process.execPath)} ${q(o.cli)} hook "$@" --tls-dir ${q(o.tlsDir)} --bundle-root ${q(o.bundleRoot)} >>${q(`${o.record}.stdout`)} 2>>${q(`${o.record}.stderr`)}`,
      `echo $? >>${q(`${o.record}.rc`)}`,
      'exit 0',
      '',
    ].join('\n'),
    { mode: 0o755 },
  )
}
