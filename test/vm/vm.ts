// The VM test's tooling: pack the guest image tree into an initramfs, a host-side network
// namespace with a bridge and one tap per VM, QEMU (TCG) with the serial console on
// stdout and a control channel on the second serial port (test/vm/tree's control.mjs).

import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { lineProcess, type LineProcess } from '../../src/demo/index.js'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const TREE = join(ROOT, 'mkosi.output/podvm-mesh-guest')
/** Files the VM test adds on top of the image: the kata-agent stand-in, the workload, the control channel. */
export const TEST_TREE = join(ROOT, 'test/vm/tree')

/** What the VM does not need at run time: documentation, apt's caches, the kernel files (QEMU loads the kernel). */
const PACK_EXCLUDE = ['./usr/share/doc/', './usr/share/man/', './usr/share/locale/', './usr/share/info/', './var/cache/apt/', './var/lib/apt/lists/', './boot/']

/** Module directories whose modules (and their dependencies) go into the initramfs: all of netfilter, and the VM's network card. */
const MODULE_DIRS = ['kernel/net/netfilter/', 'kernel/net/ipv4/netfilter/', 'kernel/net/ipv6/netfilter/']
const MODULE_NAMES = ['virtio_pci', 'virtio_net']

export function kernelVersion(tree = TREE): string {
  const versions = readdirSync(join(tree, 'usr/lib/modules'))
  if (versions.length !== 1) throw new Error(`expected one kernel in the image, found ${versions.join(', ') || 'none'}`)
  return versions[0] as string
}

/**
 * Modules to pack (paths under /usr/lib/modules/<version>/): MODULE_DIRS and
 * MODULE_NAMES with everything modprobe would load with them — dependencies and soft
 * dependencies (nf_tables needs libcrc32c, which needs a crc32c implementation first).
 */
export function modulesToPack(tree: string, version: string): string[] {
  const modDir = join(tree, 'usr/lib/modules', version)
  const all = readFileSync(join(modDir, 'modules.dep'), 'utf8').split('\n').map((l) => l.slice(0, l.indexOf(':'))).filter(Boolean)
  const base = (p: string) => p.slice(p.lastIndexOf('/') + 1).replace(/\.ko(\.\w+)?$/, '').replaceAll('-', '_')
  const roots = all.filter((m) => MODULE_DIRS.some((d) => m.startsWith(d) && !m.slice(d.length).includes('/')) || MODULE_NAMES.includes(base(m)))
  for (const name of MODULE_NAMES) if (!roots.some((m) => base(m) === name)) throw new Error(`module ${name} not in the image's kernel`)
  const r = spawnSync('modprobe', ['-d', tree, '-S', version, '--show-depends', '-a', ...roots.map(base)], { encoding: 'utf8', maxBuffer: 16 << 20 })
  if (r.status !== 0) throw new Error(`modprobe --show-depends in ${tree} failed: ${r.stderr}`)
  const out = new Set<string>()
  for (const line of r.stdout.split('\n')) {
    const path = /^insmod (\S+)/.exec(line)?.[1]
    if (path === undefined) continue
    const rel = path.slice(path.indexOf(`/modules/${version}/`) + `/modules/${version}/`.length)
    out.add(rel)
  }
  for (const m of roots) if (!out.has(m)) throw new Error(`modprobe did not resolve ${m}`)
  return [...out].sort()
}

/**
 * The image tree as an uncompressed newc initramfs (uncompressed: TCG decompresses slowly),
 * without what PACK_EXCLUDE names and with only the kernel modules modulesToPack picks.
 * The full modules.dep/modules.alias stay, so modprobe resolves what the kernel asks for.
 */
export function packImage(tree: string, out: string): { bytes: number; modules: string[] } {
  const version = kernelVersion(tree)
  const modules = modulesToPack(tree, version)
  const keepModule = new Set(modules.map((m) => `./usr/lib/modules/${version}/${m}`))
  const modRoot = `./usr/lib/modules/${version}/kernel/`
  const found = spawnSync('find', ['.', '-print0'], { cwd: tree, maxBuffer: 256 << 20 })
  if (found.status !== 0) throw new Error(`find in ${tree} failed: ${found.stderr}`)
  const paths = found.stdout
    .toString('utf8')
    .split('\0')
    .filter((p) => p !== '' && !PACK_EXCLUDE.some((x) => p.startsWith(x)))
    .filter((p) => !p.startsWith(modRoot) || !/\.ko(\.\w+)?$/.test(p) || keepModule.has(p))
  cpio(tree, paths, out)
  return { bytes: readFileSync(out).length, modules }
}

function cpio(cwd: string, paths: string[], out: string, append = false): void {
  const fd = openSync(out, append ? 'a' : 'w')
  try {
    const r = spawnSync('cpio', ['--quiet', '-o', '-H', 'newc', '--null', '-R', '0:0'], { cwd, input: paths.join('\0') + '\0', stdio: ['pipe', fd, 'pipe'], maxBuffer: 16 << 20 })
    if (r.status !== 0) throw new Error(`cpio in ${cwd} failed: ${r.stderr}`)
  } finally {
    closeSync(fd)
  }
}

/** One VM's initramfs: the packed image, then the test tree, then this VM's files (later archives win). */
export function vmInitramfs(image: string, out: string, perVm: Record<string, string>, workDir: string): void {
  copyFileSync(image, out)
  const list = (dir: string) => {
    const r = spawnSync('find', ['.', '-print0'], { cwd: dir })
    return r.stdout.toString('utf8').split('\0').filter((p) => p !== '' && p !== '.')
  }
  cpio(TEST_TREE, list(TEST_TREE), out, true)
  const dir = join(workDir, `overlay-${Date.now()}-${Math.random().toString(16).slice(2)}`)
  for (const [path, text] of Object.entries(perVm)) {
    const full = join(dir, path)
    mkdirSync(join(full, '..'), { recursive: true })
    writeFileSync(full, text)
  }
  cpio(dir, list(dir), out, true)
  appendFileSync(out, Buffer.alloc(0))
}

export function sh(cmd: string, args: string[], opts: { allowFail?: boolean; timeout?: number } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeout ?? 30_000 })
  if (!opts.allowFail && r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status} ${r.stderr}`)
  return r.stdout
}

/** The host side: a network namespace with a bridge (the VMs' link) and one persistent tap per VM. */
export class HostNet {
  constructor(
    readonly ns: string,
    readonly bridge: string,
  ) {}

  static create(prefix: string, v4: string, v6: string, taps: string[]): HostNet {
    const host = new HostNet(`${prefix}-host`, `${prefix}-br`)
    host.destroy()
    sh('ip', ['netns', 'add', host.ns])
    const ip = (...a: string[]) => sh('ip', ['-n', host.ns, ...a])
    ip('link', 'set', 'lo', 'up')
    ip('link', 'add', host.bridge, 'type', 'bridge')
    ip('addr', 'add', v4, 'dev', host.bridge)
    ip('-6', 'addr', 'add', v6, 'dev', host.bridge, 'nodad')
    ip('link', 'set', host.bridge, 'up')
    for (const tap of taps) {
      ip('tuntap', 'add', 'dev', tap, 'mode', 'tap')
      ip('link', 'set', tap, 'master', host.bridge)
      ip('link', 'set', tap, 'up')
    }
    return host
  }

  /** A process inside the host namespace, its output collected line by line. */
  spawn(cmd: string, args: string[]): LineProcess {
    return lineProcess(spawn('ip', ['netns', 'exec', this.ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }))
  }

  destroy(): void {
    sh('ip', ['netns', 'del', this.ns], { allowFail: true })
  }
}

export interface VmOptions {
  name: string
  kernel: string
  initramfs: string
  tap: string
  mac: string
  workDir: string
  memoryMiB?: number
  /** The guest's clock (QEMU's RTC base): the test's own notion of now, so a faked clock reaches the guest too. */
  now: Date
}

/** A QEMU VM: serial console (ttyS0) on stdout, control channel (ttyS1) on a unix socket. */
export class Vm {
  readonly console: LineProcess
  readonly startedAt = Date.now()
  private ctl: net.Socket | undefined
  private ctlBuf = ''
  private nextId = 1
  private readonly pending = new Map<number, (msg: Record<string, unknown>) => void>()
  readonly ctlPath: string

  constructor(
    readonly host: HostNet,
    readonly opts: VmOptions,
  ) {
    this.ctlPath = join(opts.workDir, `${opts.name}.ctl`)
    const rtc = opts.now.toISOString().slice(0, 19)
    const args = [
      // TCG by default: on the build machines /dev/kvm exists but a KVM guest hangs.
      ...(process.env['PODVM_VM_ACCEL'] === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
      '-smp', '1', '-m', String(opts.memoryMiB ?? 1536),
      '-nodefaults', '-no-user-config', '-display', 'none', '-monitor', 'none',
      '-rtc', `base=${rtc},clock=host`,
      '-kernel', opts.kernel, '-initrd', opts.initramfs,
      '-append', 'console=ttyS0 rdinit=/sbin/init quiet systemd.show_status=error net.ifnames=0',
      '-serial', 'stdio',
      '-serial', `unix:${this.ctlPath},server=on,wait=off`,
      '-netdev', `tap,id=n0,ifname=${opts.tap},script=no,downscript=no`,
      '-device', `virtio-net-pci,netdev=n0,mac=${opts.mac}`,
    ]
    this.console = host.spawn('qemu-system-x86_64', args)
    // PODVM_VM_CONSOLE=1: the serial consoles live on stderr, while the test runs.
    if (process.env['PODVM_VM_CONSOLE'] === '1') this.console.child.stdout?.on('data', (d: Buffer) => process.stderr.write(`[${opts.name}] ${d.toString()}`))
  }

  /** Seconds since QEMU was started. */
  since(): number {
    return (Date.now() - this.startedAt) / 1000
  }

  consoleText(): string {
    return this.console.lines.join('\n')
  }

  private async connect(deadline: number): Promise<net.Socket> {
    if (this.ctl !== undefined && !this.ctl.destroyed) return this.ctl
    while (Date.now() < deadline) {
      if (existsSync(this.ctlPath)) {
        const s = await new Promise<net.Socket | undefined>((res) => {
          const c = net.connect(this.ctlPath)
          c.once('connect', () => res(c))
          c.once('error', () => res(undefined))
        })
        if (s !== undefined) {
          s.setEncoding('utf8')
          s.on('data', (d: string) => {
            this.ctlBuf += d
            let nl: number
            while ((nl = this.ctlBuf.indexOf('\n')) >= 0) {
              const line = this.ctlBuf.slice(0, nl)
              this.ctlBuf = this.ctlBuf.slice(nl + 1)
              try {
                const msg = JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>
                const cb = this.pending.get(Number(msg['id']))
                if (cb !== undefined) {
                  this.pending.delete(Number(msg['id']))
                  cb(msg)
                }
              } catch {
                // not ours: noise before the guest switched its port to raw mode
              }
            }
          })
          s.on('error', () => {})
          this.ctl = s
          return s
        }
      }
      await new Promise((r) => setTimeout(r, 200))
    }
    throw new Error(`${this.opts.name}: control socket ${this.ctlPath} not available`)
  }

  /** One request on the control channel; rejects after timeoutMs (the guest may not be listening yet). */
  async request(op: Record<string, unknown>, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs
    const s = await this.connect(deadline)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`${this.opts.name}: no answer to ${JSON.stringify(op)} within ${timeoutMs} ms`))
      }, Math.max(1, deadline - Date.now()))
      this.pending.set(id, (msg) => {
        clearTimeout(t)
        resolve(msg)
      })
      s.write(`${JSON.stringify({ id, ...op })}\n`)
    })
  }

  /** A shell command in the guest: exit code and output. */
  async run(cmd: string, timeoutMs = 60_000): Promise<{ code: number; out: string }> {
    const r = await this.request({ op: 'sh', cmd, timeoutMs: timeoutMs - 2000 }, timeoutMs)
    return { code: Number(r['code']), out: Buffer.from(String(r['out'] ?? ''), 'base64').toString('utf8') }
  }

  /** Retries a control request until it is answered (the guest's control service is up) or the deadline passes. */
  async waitControl(deadlineMs: number): Promise<void> {
    while (Date.now() < deadlineMs) {
      try {
        await this.request({ op: 'readyz' }, 5_000)
        return
      } catch {
        this.assertRunning()
      }
    }
    throw new Error(`${this.opts.name}: control channel did not answer`)
  }

  /** Polls /readyz inside the guest until it is 200. */
  async waitReady(deadlineMs: number): Promise<void> {
    while (Date.now() < deadlineMs) {
      try {
        if ((await this.request({ op: 'readyz' }, 8_000))['status'] === 200) return
      } catch {
        // control channel not up yet (boot, or reboot)
      }
      this.assertRunning()
      await new Promise((r) => setTimeout(r, 1000))
    }
    throw new Error(`${this.opts.name}: the daemon did not become ready`)
  }

  assertRunning(): void {
    const c = this.console.child
    if (c.exitCode !== null || c.signalCode !== null) throw new Error(`${this.opts.name}: QEMU exited (${c.exitCode ?? c.signalCode})`)
  }

  /** Forget the control connection's pending requests (after a guest reboot). */
  resetControl(): void {
    this.pending.clear()
    this.ctlBuf = ''
  }

  async stop(): Promise<void> {
    this.ctl?.destroy()
    this.console.kill('SIGKILL')
    await Promise.race([this.console.exited, new Promise((r) => setTimeout(r, 5000))])
  }
}
