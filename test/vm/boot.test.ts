// The guest image, booted. Builds it (`npm run image`), packs the tree as an initramfs
// with the image's own kernel, and boots two VMs with QEMU (TCG) on a bridge inside a
// network namespace of their own; the coordinator (simulated evidence, trusted
// explicitly), a prober and the capture run in that namespace. From before the first
// instant of boot the prober keeps sending plaintext to both VMs' mTLS port; the
// workload in each VM reports every byte it ever receives on the serial console.
// Order matters: later tests build on the VMs of earlier ones.
//
// Slow: a few minutes on 2 shared cores. Run it under the lock:
//   flock /tmp/podvm-netns.lock npx vitest run test/vm
// PODVM_VM_REUSE_IMAGE=1 boots the tree mkosi.output/ already holds instead of building.
// Needs root, QEMU, mkosi, cpio, tcpdump; under CI=true their absence fails the run.

import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DIST, type LineProcess } from '../../src/demo/index.js'
import { HostNet, kernelVersion, packImage, ROOT, TREE, Vm, vmInitramfs } from './vm.js'

const CI = process.env['CI'] === 'true'
const PREFIX = 'pmvm'
const BOOT_TIMEOUT_MS = 8 * 60_000
const BUILD_TIMEOUT_MS = 9 * 60_000
const HOST = { co: 'c0'.repeat(32), a: 'a1'.repeat(32), b: 'b2'.repeat(32) }
const NET = { host4: '10.91.0.1', host6: 'fd00:91::1', a4: '10.91.0.11', a6: 'fd00:91::11', b4: '10.91.0.12', b6: 'fd00:91::12' }
const APP_PORT = 8080
const EGRESS_B = '127.137.0.1'
/** A's egress port for B: not the workload's own 8080, which it binds on every address. */
const EGRESS_PORT = 9080

/**
 * Kernel options the rulesets and policy routing use (guest-image/README.md lists them
 * with the reason for each); `y` or `m` in the booted kernel's config.
 */
export const KERNEL_OPTIONS = [
  'NETFILTER', 'NETFILTER_ADVANCED', 'NETFILTER_NETLINK', 'NF_TABLES', 'NF_TABLES_INET', 'NF_TABLES_IPV4', 'NF_TABLES_IPV6',
  'NF_CONNTRACK', 'NFT_CT', 'NF_DEFRAG_IPV4', 'NF_DEFRAG_IPV6',
  'NFT_TPROXY', 'NF_TPROXY_IPV4', 'NF_TPROXY_IPV6', 'NFT_SOCKET', 'NF_SOCKET_IPV4', 'NF_SOCKET_IPV6',
  'NFT_FIB', 'NFT_FIB_INET', 'NFT_FIB_IPV4', 'NFT_FIB_IPV6', 'NFT_LIMIT', 'NFT_LOG', 'NF_LOG_SYSLOG',
  'IPV6', 'IP_MULTIPLE_TABLES', 'IPV6_MULTIPLE_TABLES', 'MODULES',
]
/** Modules the final ruleset makes the kernel load on demand (through the image's modprobe). */
const LOADED_AFTER_READY = ['nf_tables', 'nfnetlink', 'nft_tproxy', 'nft_socket', 'nft_fib_inet', 'nft_ct', 'nf_conntrack', 'nft_limit', 'nft_log']

function missingCapability(): string | undefined {
  if (process.getuid?.() !== 0) return 'booting the image needs root (mkosi, network namespaces, taps)'
  for (const tool of ['qemu-system-x86_64', 'mkosi', 'cpio', 'tcpdump', 'ip', 'modprobe']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (scripts/setup.sh installs it)`
  }
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing (tap devices)'
  return undefined
}

const missing = missingCapability()
if (missing !== undefined && CI) throw new Error(`the VM test is required under CI=true: ${missing}`)

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

describe.skipIf(missing !== undefined)(`the guest image booted in QEMU${missing !== undefined ? ` (skipped: ${missing})` : ''}`, () => {
  let work: string
  let host: HostNet
  let coordinator: LineProcess
  let prober: LineProcess
  let vmA: Vm
  let vmB: Vm
  const probeMarker = `PLAINTEXT-PROBE-${randomBytes(6).toString('hex')}`
  /** Guest-clock figures per boot: seconds since the kernel started. */
  const boots: { vm: string; baseline: number; kataAgent: number; ready: number; hostSeconds: number }[] = []
  let failed = false

  const daemonEnv = (hostData: string, extra: string[]): string =>
    [
      '# VM test: certificates from the coordinator on the host, simulated evidence (trusted explicitly there)',
      'NODE_ENV=production',
      `PODVM_MESH_RUN_ARGS=${[
        '--coordinator', `${NET.host4}:7777`, '--coordinator-identity', `policy:${HOST.co}`,
        '--evidence', 'simulated', '--simulated-hostdata', hostData, '--log-level', 'info', ...extra,
      ].join(' ')}`,
      '',
    ].join('\n')

  const recordBoot = async (vm: Vm, hostSeconds: number): Promise<void> => {
    const t = await vm.request({ op: 'times' })
    boots.push({ vm: vm.opts.name, baseline: Number(t['baseline']), kataAgent: Number(t['kataAgent']), ready: Number(t['ready']), hostSeconds })
  }

  /** Every plaintext probe the workloads ever reported (they print every byte they receive). */
  const leakedProbes = (vm: Vm): string[] => vm.console.lines.filter((l) => l.includes('workload received') && l.includes(probeMarker))

  beforeAll(async () => {
    failed = true // until set-up completes: a failing set-up prints what it has
    work = mkdtempSync(join(tmpdir(), 'podvm-vm-'))
    if (process.env['PODVM_VM_REUSE_IMAGE'] !== '1' || !existsSync(join(TREE, 'usr/lib/os-release'))) {
      const build = spawnSync('npm', ['run', 'image'], { cwd: ROOT, encoding: 'utf8', timeout: BUILD_TIMEOUT_MS })
      if (build.status !== 0) throw new Error(`npm run image failed:\n${build.stdout.slice(-3000)}\n${build.stderr.slice(-3000)}`)
    }
    const image = join(work, 'image.cpio')
    const packed = packImage(TREE, image)
    console.info(`VM test: image packed as an initramfs, ${(packed.bytes / 2 ** 20).toFixed(0)} MiB, ${packed.modules.length} kernel modules`)
    const kernel = join(TREE, 'boot', `vmlinuz-${kernelVersion()}`)

    host = HostNet.create(PREFIX, `${NET.host4}/24`, `${NET.host6}/64`, [`${PREFIX}-ta`, `${PREFIX}-tb`])
    const manifest = join(work, 'manifest.json')
    writeFileSync(manifest, JSON.stringify({ policies: { [HOST.a]: { sans: ['a.mesh.test'] }, [HOST.b]: { sans: ['b.mesh.test'] } }, acceptSimulated: true }))
    coordinator = host.spawn(process.execPath, [
      join(DIST, 'cli.js'), 'coordinator', '--state', join(work, 'coordinator'), '--manifest', manifest,
      '--listen', `${NET.host4}:7777`, '--evidence', 'simulated', '--simulated-hostdata', HOST.co,
    ])
    await coordinator.waitFor((l) => l.includes('coordinator listening'), 30_000, 'the coordinator to listen')

    prober = host.spawn(process.execPath, [join(ROOT, 'test/vm/prober.mjs'), probeMarker, `${NET.a4}:${APP_PORT}`, `[${NET.a6}]:${APP_PORT}`, `${NET.b4}:${APP_PORT}`, `[${NET.b6}]:${APP_PORT}`])

    const now = new Date()
    const files = (name: string, ip4: string, ip6: string, env: string) => {
      const out = join(work, `${name}.cpio`)
      vmInitramfs(image, out, {
        'etc/podvm-vm/pod-network': `IPV4=${ip4}/24\nIPV6=${ip6}/64\n`,
        'etc/podvm-mesh/daemon.env': env,
        'etc/hosts': `127.0.0.1 localhost\n::1 localhost\n${NET.a4} a.mesh.test\n${NET.b4} b.mesh.test\n`,
        'etc/hostname': `${name}\n`,
      }, work)
      return out
    }
    const initA = files('vm-a', NET.a4, NET.a6, daemonEnv(HOST.a, ['--egress', `b#${EGRESS_B}:${EGRESS_PORT}#b.mesh.test:${APP_PORT}`]))
    const initB = files('vm-b', NET.b4, NET.b6, daemonEnv(HOST.b, []))
    rmSync(image)
    vmA = new Vm(host, { name: 'vm-a', kernel, initramfs: initA, tap: `${PREFIX}-ta`, mac: '52:54:00:91:00:11', workDir: work, now })
    vmB = new Vm(host, { name: 'vm-b', kernel, initramfs: initB, tap: `${PREFIX}-tb`, mac: '52:54:00:91:00:12', workDir: work, now })
    failed = false
  }, BUILD_TIMEOUT_MS + 2 * 60_000)

  afterAll(async () => {
    const figures = boots.map((b) => `  ${b.vm}: boot → baseline ${b.baseline.toFixed(1)} s, → kata-agent stand-in ${b.kataAgent.toFixed(1)} s, → ready ${b.ready.toFixed(1)} s (guest clock); QEMU start → ready ${b.hostSeconds.toFixed(0)} s (host clock)`)
    if (boots.length > 0) {
      figures.push(`  medians of ${boots.length} boots: boot → baseline ${median(boots.map((b) => b.baseline)).toFixed(1)} s, boot → ready ${median(boots.map((b) => b.ready)).toFixed(1)} s`)
      console.info(`VM test boot times:\n${figures.join('\n')}`)
    }
    for (const vm of [vmA, vmB]) {
      if (vm === undefined) continue
      if (failed) {
        const journal = await vm.run('journalctl -b --no-pager -o short-monotonic | tail -n 400', 30_000).catch((e: unknown) => ({ out: `(journal unavailable: ${String(e)})` }))
        console.error(`==== ${vm.opts.name}: serial console ====\n${vm.consoleText().slice(-30_000)}\n==== ${vm.opts.name}: journal (last 400 lines) ====\n${journal.out}`)
      }
      await vm.stop()
    }
    if (failed && coordinator !== undefined) console.error(`==== coordinator ====\n${coordinator.lines.slice(-100).join('\n')}`)
    prober?.kill('SIGKILL')
    coordinator?.kill('SIGKILL')
    host?.destroy()
    if (work !== undefined) rmSync(work, { recursive: true, force: true })
  }, 120_000)

  const step = (name: string, fn: () => Promise<void>, timeout: number) =>
    it(name, async () => {
      try {
        await fn()
      } catch (err) {
        failed = true
        throw err
      }
    }, timeout)

  step('both VMs boot, and the kata-agent stand-in starts only after the baseline ruleset is in place', async () => {
    const deadline = Date.now() + BOOT_TIMEOUT_MS
    for (const vm of [vmA, vmB]) {
      // systemd prints failed units on the console even with `quiet`: fail at once, not at the deadline.
      const line = await vm.console.waitFor(
        (l) => l.includes('kata-agent-standin started') || /FAILED|Dependency failed|Kernel panic/.test(l),
        Math.max(1, deadline - Date.now()),
        `${vm.opts.name}: the kata-agent stand-in`,
      )
      expect(line, vm.opts.name).toMatch(/kata-agent-standin started .*baseline=present/)
    }
  }, BOOT_TIMEOUT_MS + 10_000)

  step("the kernel options the rulesets use are in the booted kernel's config", async () => {
    const r = await vmA.run('uname -r')
    const version = r.out.trim()
    expect(version).toBe(kernelVersion())
    const config = readFileSync(join(TREE, 'boot', `config-${version}`), 'utf8')
    const value = (opt: string) => new RegExp(`^CONFIG_${opt}=(\\w+)$`, 'm').exec(config)?.[1] ?? 'not set'
    expect(Object.fromEntries(KERNEL_OPTIONS.map((o) => [o, value(o)])), 'y or m').toEqual(Object.fromEntries(KERNEL_OPTIONS.map((o) => [o, expect.stringMatching(/^[ym]$/)])))
  }, 60_000)

  step('the daemons become ready with certificates from the coordinator', async () => {
    const deadline = Date.now() + BOOT_TIMEOUT_MS
    for (const vm of [vmA, vmB]) {
      await vm.waitReady(deadline)
      await recordBoot(vm, vm.since())
    }
    // The certificates in each VM are the ones the coordinator issued to it: its SANs, its address.
    const issued = coordinator.lines.filter((l) => l.includes('"mesh certificate issued"')).map((l) => JSON.parse(l) as { sans: string[] })
    expect(issued.map((r) => r.sans)).toEqual(expect.arrayContaining([['a.mesh.test', NET.a4], ['b.mesh.test', NET.b4]]))
    for (const [vm, name] of [[vmA, 'a.mesh.test'], [vmB, 'b.mesh.test']] as const) {
      const cert = await vm.run(`/opt/podvm-mesh/node/bin/node -e 'const c = new (require("node:crypto").X509Certificate)(require("node:fs").readFileSync("/contrast/tls-config/certChain.pem")); console.log(c.subject, c.issuer.replace(/\\n/g, ","))'`)
      expect(cert.out.trim(), vm.opts.name).toBe(`CN=${name} CN=system:coordinator:intermediate`)
    }
    // Debian's nftables.service (flush ruleset) must not run in the image.
    expect((await vmB.run('systemctl is-enabled nftables.service')).out.trim()).toBe('masked')
    const lsmod = await vmB.run('cut -d" " -f1 /proc/modules')
    const loaded = lsmod.out.split('\n')
    for (const m of LOADED_AFTER_READY) expect(loaded, `module ${m} loaded on demand`).toContain(m)
  }, BOOT_TIMEOUT_MS + 60_000)

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
  const echoAToB = (data: string, timeoutMs = 20_000) => vmA.request({ op: 'echo', host: EGRESS_B, port: EGRESS_PORT, data, timeoutMs }, timeoutMs + 30_000)
  const received = (vm: Vm, m: string) => vm.console.lines.some((l) => l.includes('workload received') && l.includes(m))

  step('VM A → VM B through the mesh works, and a capture on the host side of the link shows only TLS', async () => {
    const pcap = join(work, 'a-to-b.pcap')
    const cap = host.spawn('tcpdump', ['-i', host.bridge, '-n', '-U', '-w', pcap, `host ${NET.a4} and host ${NET.b4}`])
    await cap.waitFor((l) => l.includes('listening on'), 15_000, 'tcpdump to listen')
    const m = `MESH-A-TO-B-${randomBytes(6).toString('hex')}`
    const r = await echoAToB(m.repeat(16))
    expect(r, JSON.stringify(r)).toMatchObject({ ok: true })
    await vmB.console.waitFor((l) => l.includes('workload received') && l.includes(m), 20_000, "the marker at B's workload")
    await sleep(1000)
    cap.kill('SIGINT')
    await cap.exited
    const wire = readFileSync(pcap)
    const packets = spawnSync('tcpdump', ['-r', pcap, '-n', `tcp port ${APP_PORT}`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
    expect(packets.length, 'packets A ↔ B:8080 in the capture').toBeGreaterThan(4)
    expect(wire.includes(m), 'the marker in plaintext on the wire').toBe(false)
    // TLS records: a handshake (0x16 0x03 0x01, ClientHello) and application data (0x17 0x03 0x03).
    expect(wire.includes(Buffer.from([0x16, 0x03, 0x01])), 'a TLS handshake record').toBe(true)
    expect(wire.includes(Buffer.from([0x17, 0x03, 0x03])), 'TLS application data records').toBe(true)
  }, 120_000)

  step('the daemon killed inside VM B: the rules stay closed, systemd restarts it, traffic resumes', async () => {
    const pid = (await vmB.run('systemctl show -P MainPID podvm-mesh.service')).out.trim()
    await vmB.run('systemctl kill -s SIGKILL podvm-mesh.service')
    // At once, with no daemon: the table is still there, with its drops (the prober keeps testing it).
    const table = await vmB.run('nft list table inet podvm_mesh')
    expect(table.code, table.out).toBe(0)
    expect(table.out).toMatch(/counter packets \d+ bytes \d+ drop/)
    const deadline = Date.now() + BOOT_TIMEOUT_MS
    while (Number((await vmB.run('systemctl show -P NRestarts podvm-mesh.service')).out.trim()) < 1) {
      if (Date.now() > deadline) throw new Error('systemd did not restart the daemon')
      await sleep(500)
    }
    await vmB.waitReady(deadline)
    expect((await vmB.run('systemctl show -P MainPID podvm-mesh.service')).out.trim()).not.toBe(pid)
    const m = `MESH-AFTER-RESTART-${randomBytes(6).toString('hex')}`
    expect(await echoAToB(m)).toMatchObject({ ok: true })
    await vmB.console.waitFor((l) => l.includes('workload received') && l.includes(m), 20_000, "the marker at B's workload")
  }, BOOT_TIMEOUT_MS + 60_000)

  step('after a reboot VM B is closed again from the first instant, and becomes ready again', async () => {
    const standins = () => vmB.console.lines.filter((l) => l.includes('kata-agent-standin started'))
    const before = standins().length
    const t0 = Date.now()
    void vmB.request({ op: 'sh', cmd: 'systemctl reboot' }, 10_000).catch(() => undefined)
    const deadline = Date.now() + BOOT_TIMEOUT_MS
    while (standins().length <= before) {
      if (Date.now() > deadline) throw new Error('VM B did not come back after the reboot')
      vmB.assertRunning()
      await sleep(500)
    }
    expect(standins().at(-1)).toMatch(/baseline=present/)
    vmB.resetControl()
    await vmB.waitReady(deadline)
    await recordBoot(vmB, (Date.now() - t0) / 1000)
    const m = `MESH-AFTER-REBOOT-${randomBytes(6).toString('hex')}`
    expect(await echoAToB(m)).toMatchObject({ ok: true })
    await vmB.console.waitFor((l) => l.includes('workload received') && l.includes(m), 20_000, "the marker at B's workload")
  }, BOOT_TIMEOUT_MS + 60_000)

  step("no plaintext probe reached a workload at any moment; once B's rules are removed by hand, the same prober's plaintext does", async () => {
    const counts = JSON.parse(prober.lines.filter((l) => l.startsWith('{')).at(-1) ?? '{}') as { counts?: Record<string, { attempts: number; connected: number }> }
    console.info(`VM test prober: ${JSON.stringify(counts.counts)}`)
    for (const c of Object.values(counts.counts ?? {})) expect(c.attempts).toBeGreaterThan(100)
    expect(leakedProbes(vmA)).toEqual([])
    expect(leakedProbes(vmB)).toEqual([])
    // The control experiment: the prober and the workload's report do see plaintext when it gets through.
    const r = await vmB.run('systemctl stop podvm-mesh.service && /usr/local/bin/podvm-mesh teardown')
    expect(r.code, r.out).toBe(0)
    await vmB.console.waitFor((l) => l.includes('workload received') && l.includes(probeMarker), 60_000, 'a plaintext probe at B once its rules are gone')
    expect(received(vmA, probeMarker)).toBe(false)
  }, 120_000)
})
