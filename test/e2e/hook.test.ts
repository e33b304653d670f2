// The guest OCI hook under a real OCI runtime (runc), configured at prestart exactly as
// kata-agent configures guest hooks: argv `podvm-mesh-certs prestart`, no environment,
// the OCI state on stdin, a 10 s limit, and its exit code ignored (the lab hook file
// always exits 0, so failing closed must work without it). The container's root file
// system is copied from the host's binaries. Needs root and runc; under CI=true their
// absence fails the suite. No networking: each container gets a new, empty netns.

import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeWorkloadSecret } from '../../src/agent/attested-certs.js'
import { buildLabRootfs, containersUnavailableReason, DIST, runContainer, startContainer, waitFor, writeBundle, writeLabHook, type OciMount } from '../../src/demo/index.js'
import { meshStatusWriter, writeFileAtomic, writeTlsDir, type MeshStatus } from '../../src/pki/index.js'

const missing = containersUnavailableReason()
// runc ids are machine-wide: a tag per run, so two runs of this file never collide.
const RUN = randomBytes(3).toString('hex')
const cid = (name: string): string => `pmhook-${RUN}-${name}`
const CI = process.env['CI'] === 'true'
const log = pino({ level: 'silent' })

describe.skipIf(missing !== undefined && !CI)(`guest hook under runc${missing !== undefined ? ` (skipped: ${missing})` : ''}`, () => {
  let work: string
  let rootfs: string
  let n = 0

  beforeAll(async () => {
    if (missing !== undefined) throw new Error(`CI=true and ${missing}`)
    work = await mkdtemp(join(tmpdir(), 'pmhook-'))
    rootfs = join(work, 'rootfs-template')
    buildLabRootfs(rootfs, ['sh', 'cat', 'ls', 'stat', 'sleep'])
  })
  afterAll(() => {
    if (work !== undefined && process.env["PMHOOK_KEEP"] === undefined) rmSync(work, { recursive: true, force: true })
  })

  /** A guest: its /contrast (the daemon's side), a bundle root, a hook file; one per test. */
  function guest() {
    const g = join(work, `g${++n}`)
    const contrast = join(g, 'contrast')
    const tlsDir = join(contrast, 'tls-config')
    const bundleRoot = join(g, 'run-kata-containers')
    const record = join(g, 'hook')
    const out = join(g, 'out')
    mkdirSync(bundleRoot, { recursive: true })
    mkdirSync(out)
    const hook = join(g, 'podvm-mesh-certs')
    writeLabHook(hook, { cli: join(DIST, 'cli.js'), tlsDir, bundleRoot, record })
    const status = meshStatusWriter(tlsDir, log)
    return {
      tlsDir,
      contrast,
      out,
      setStatus: (s: MeshStatus) => status.set(s),
      /** As the daemon writes them (names, modes, atomic renames). */
      async writeCertificates(tag: string) {
        await writeTlsDir(tlsDir, { meshCa: `mesh-ca ${tag}\n`, certChain: `chain ${tag}\n`, key: `key ${tag}\n`, rootCa: `root ${tag}\n` })
        await writeWorkloadSecret(tlsDir, Buffer.from(`seed-${tag}`))
      },
      /** The bundle of container cid(name), at <bundleRoot>/<id> as kata-agent puts it. */
      bundle(name: string, args: string[], opts: { annotations?: Record<string, string>; mounts?: OciMount[] } = {}) {
        return writeBundle({
          id: cid(name),
          bundleRoot,
          rootfs,
          args,
          hook,
          annotations: opts.annotations ?? { 'io.kubernetes.cri.container-type': 'container' },
          mounts: [{ destination: '/out', type: 'bind', source: out, options: ['rbind', 'rw'] }, ...(opts.mounts ?? [])],
        })
      },
      hookRecord: () => ({
        rc: existsSync(`${record}.rc`) ? readFileSync(`${record}.rc`, 'utf8').trim() : '',
        stdout: existsSync(`${record}.stdout`) ? readFileSync(`${record}.stdout`, 'utf8') : '',
        stderr: existsSync(`${record}.stderr`) ? readFileSync(`${record}.stderr`, 'utf8') : '',
      }),
      hookFile: hook,
    }
  }

  const SHOW = [
    '/bin/sh',
    '-c',
    'cd /contrast/tls-config && for f in mesh-ca.pem certChain.pem key.pem coordinator-root-ca.pem ../secrets/workload-secret-seed; do echo "$f $(stat -c %a $f) $(cat $f)"; done; ' +
      'echo x 2>/dev/null >/contrast/tls-config/new && echo tls-config-writable || echo tls-config-read-only; ' +
      'echo x 2>/dev/null >/contrast/secrets/new && echo secrets-writable || echo secrets-read-only',
  ]
  const SHOWN = (tag: string) =>
    [
      `mesh-ca.pem 444 mesh-ca ${tag}`,
      `certChain.pem 444 chain ${tag}`,
      `key.pem 400 key ${tag}`,
      `coordinator-root-ca.pem 444 root ${tag}`,
      `../secrets/workload-secret-seed 400 ${Buffer.from(`seed-${tag}`).toString('hex')}`,
      'tls-config-read-only',
      'secrets-read-only',
      '',
    ].join('\n')

  it("a container reads Contrast's files at start, read-only, with Contrast's names and modes", async () => {
    const g = guest()
    await g.writeCertificates('v1')
    await g.setStatus({ state: 'ready' })
    const r = await runContainer(g.bundle('ready', SHOW), cid('ready'))
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe(SHOWN('v1'))
    expect(g.hookRecord()).toMatchObject({ rc: '0', stderr: '' })
    expect(g.hookRecord().stdout).toContain(`container ${cid('ready')}: /contrast/tls-config and /contrast/secrets mounted read-only`)
  })

  it("also when the pod mounts a volume at /contrast (Contrast's contrast-secrets emptyDir), which stays writable", async () => {
    const g = guest()
    await g.writeCertificates('v1')
    await g.setStatus({ state: 'ready' })
    const volume: OciMount = { destination: '/contrast', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] }
    const args = ['/bin/sh', '-c', `${SHOW[2]}; echo app > /contrast/app-file && cat /contrast/app-file`]
    const r = await runContainer(g.bundle('volume', args, { mounts: [volume] }), cid('volume'))
    expect(r.stdout).toBe(`${SHOWN('v1')}app\n`)
  })

  it('a container created while the mesh is pending waits for it, then reads its certificates at start', async () => {
    const g = guest()
    await g.setStatus({ state: 'pending' })
    const started = runContainer(g.bundle('wait', SHOW), cid('wait'))
    await new Promise((r) => setTimeout(r, 1_500))
    await g.writeCertificates('v1')
    await g.setStatus({ state: 'ready' })
    const r = await started
    expect(r.stdout).toBe(SHOWN('v1'))
    expect(r.ms).toBeGreaterThan(1_500)
  })

  it('a container started before the mesh is ready (past the 8 s wait) gets the certificates once the mesh has them', async () => {
    const g = guest()
    await g.setStatus({ state: 'pending' })
    const args = [
      '/bin/sh',
      '-c',
      'test -e /contrast/tls-config/certChain.pem && echo present-at-start || echo absent-at-start; echo > /out/started; ' +
        'i=0; while [ ! -e /contrast/tls-config/certChain.pem ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done; cat /contrast/tls-config/certChain.pem',
    ]
    const run = runContainer(g.bundle('late', args), cid('late'))
    expect(await waitFor(() => existsSync(join(g.out, 'started')), { timeoutMs: 15_000 })).toBe(true)
    await g.writeCertificates('late')
    await g.setStatus({ state: 'ready' })
    const r = await run
    expect(r.stdout).toBe('absent-at-start\nchain late\n')
    expect(g.hookRecord().rc).toBe('0')
    expect(g.hookRecord().stdout).toMatch(/the mesh is not ready yet; .*mounted read-only, certificates appear there when it is/)
    // The hook gave up waiting inside the runtime's 10 s limit (runc would have failed the container otherwise).
    expect(r.ms).toBeGreaterThan(8_000)
  })

  it('a mesh that failed for good keeps the workload from running, though the runtime never sees an exit code', async () => {
    const g = guest()
    await g.writeCertificates('v1')
    await g.setStatus({ state: 'failed', reason: 'COORDINATOR_POLICY_NOT_FOUND' })
    const r = await runContainer(g.bundle('failed', ['/bin/sh', '-c', 'echo ran > /out/ran; cat /contrast/tls-config/key.pem']), cid('failed'))
    expect(r.code).not.toBe(0)
    expect(r.stdout).toBe('')
    expect(existsSync(join(g.out, 'ran'))).toBe(false)
    expect(g.hookRecord()).toMatchObject({ rc: '1' })
    expect(g.hookRecord().stderr).toBe(
      `podvm-mesh hook: container ${cid('failed')}: the mesh has failed (COORDINATOR_POLICY_NOT_FOUND); stopped the container before its workload ran\n`,
    )
  })

  it('a renewal shows up in a running container without a restart', async () => {
    const g = guest()
    await g.writeCertificates('v1')
    await g.setStatus({ state: 'ready' })
    const args = ['/bin/sh', '-c', 'while :; do cat /contrast/tls-config/certChain.pem /contrast/secrets/workload-secret-seed > /out/seen; sleep 0.1; done']
    const c = startContainer(g.bundle('renew', args), cid('renew'))
    try {
      const seen = () => (existsSync(join(g.out, 'seen')) ? readFileSync(join(g.out, 'seen'), 'utf8') : '')
      expect(await waitFor(() => seen().startsWith('chain v1\n'), { timeoutMs: 10_000 })).toBe(true)
      // The daemon's renewal: new files renamed over the old ones in the same directory.
      await g.writeCertificates('v2')
      expect(await waitFor(() => seen() === `chain v2\n${Buffer.from('seed-v2').toString('hex')}`, { timeoutMs: 5_000 })).toBe(true)
    } finally {
      await c.stop()
    }
  })

  it('the pause container is left alone (nothing mounted or created, even when the mesh failed)', async () => {
    const g = guest()
    await g.setStatus({ state: 'failed', reason: 'BOOT_FAILED' })
    const bundle = g.bundle('pause', ['/bin/sh', '-c', 'ls /contrast 2>&1 || echo no-contrast'], { annotations: { 'io.kubernetes.cri.container-type': 'sandbox' } })
    const r = await runContainer(bundle, cid('pause'))
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/no-contrast\n$/)
    expect(existsSync(join(bundle, 'rootfs', 'contrast'))).toBe(false)
    expect(g.hookRecord().stdout).toBe(`podvm-mesh hook: container ${cid('pause')}: pause container, nothing to do\n`)
  })

  it('an image whose /contrast is a symlink gets nothing mounted through it and does not run', async () => {
    const g = guest()
    await g.writeCertificates('v1')
    await g.setStatus({ state: 'ready' })
    const bundle = g.bundle('symlink', ['/bin/sh', '-c', 'echo ran > /out/ran'])
    symlinkSync('/tmp', join(bundle, 'rootfs', 'contrast'))
    const r = await runContainer(bundle, cid('symlink'))
    expect(r.code).not.toBe(0)
    expect(existsSync(join(g.out, 'ran'))).toBe(false)
    expect(g.hookRecord().stderr).toMatch(/HOOK_UNSAFE_PATH: \/contrast in the container is a symlink or not a directory/)
    expect(existsSync(join(bundle, 'rootfs', 'tmp', 'tls-config'))).toBe(false)
  })

  // The image is the attacker's. The hook runs as root before pivot_root, where an
  // absolute symlink, or enough `..`, in the container's tree leads to the guest's own
  // files. Each layout must stop the container, without the hook creating, mounting or
  // blocking on anything outside the container's root.
  it('hostile image layouts under /contrast: symlinks out of the root, a FIFO, a device node, a file', async () => {
    const layouts: [string, (rootfs: string, victim: string) => void][] = [
      ['tls-config an absolute symlink to a guest directory', (r, v) => {
        mkdirSync(join(r, 'contrast'))
        symlinkSync(`/../../..${v}`, join(r, 'contrast', 'tls-config'))
      }],
      ['secrets a relative symlink climbing out of the root', (r, v) => {
        mkdirSync(join(r, 'contrast'))
        symlinkSync(`${'../'.repeat(24)}${v.slice(1)}`, join(r, 'contrast', 'secrets'))
      }],
      ['contrast a FIFO', (r) => execFileSync('mkfifo', [join(r, 'contrast')])],
      ['tls-config a character device (/dev/null)', (r) => {
        mkdirSync(join(r, 'contrast'))
        execFileSync('mknod', [join(r, 'contrast', 'tls-config'), 'c', '1', '3'])
      }],
      ['secrets a regular file', (r) => {
        mkdirSync(join(r, 'contrast'))
        writeFileSync(join(r, 'contrast', 'secrets'), 'not a directory')
      }],
    ]
    const outcome: Record<string, unknown> = {}
    for (const [i, [name, plant]] of layouts.entries()) {
      const g = guest()
      await g.writeCertificates('v1')
      await g.setStatus({ state: 'ready' })
      const victim = join(g.out, '..', 'victim')
      mkdirSync(victim)
      const bundle = g.bundle(`hostile${i}`, ['/bin/sh', '-c', 'echo ran > /out/ran'])
      plant(join(bundle, 'rootfs'), victim)
      const r = await runContainer(bundle, cid(`hostile${i}`), { timeoutMs: 20_000 })
      outcome[name] = {
        ran: existsSync(join(g.out, 'ran')),
        hook: g.hookRecord().rc,
        reason: /HOOK_UNSAFE_PATH: (\/contrast\S*) in the container is a symlink or not a directory/.exec(g.hookRecord().stderr)?.[1] ?? g.hookRecord().stderr,
        victim: readdirSync(victim),
        quick: r.ms < 8_000,
      }
    }
    const refused = (path: string) => ({ ran: false, hook: '1', reason: path, victim: [], quick: true })
    expect(outcome).toEqual({
      'tls-config an absolute symlink to a guest directory': refused('/contrast/tls-config'),
      'secrets a relative symlink climbing out of the root': refused('/contrast/secrets'),
      'contrast a FIFO': refused('/contrast'),
      'tls-config a character device (/dev/null)': refused('/contrast/tls-config'),
      'secrets a regular file': refused('/contrast/secrets'),
    })
  })

  it('malformed state on stdin is refused with a clear message, and nothing is done', async () => {
    const g = guest()
    await g.setStatus({ state: 'failed', reason: 'BOOT_FAILED' })
    const { run } = await import('../../src/demo/index.js')
    const cases: [string, RegExp][] = [
      ['{"ociVersion":"1.0.2","id":', /refused: state on stdin is not JSON: .*; nothing done/],
      ['{"ociVersion":"1.0.2","id":"x","status":"created","pid":"12","bundle":"/b/x"}', /refused: state on stdin is not an OCI state: pid: .*; nothing done/],
      [JSON.stringify({ ociVersion: '1.0.2', id: 'x', status: 'created', pid: process.pid, bundle: '/elsewhere/x' }), /refused: state on stdin: bundle "\/elsewhere\/x" is not .*\/run-kata-containers\/x; nothing done/],
    ]
    for (const [input, message] of cases) {
      // As kata-agent runs it: argv[0] the file name, argv[1] the phase, an empty environment.
      const r = await run('env', ['-i', g.hookFile, 'prestart'], { input })
      expect(r.code).toBe(0)
      expect(g.hookRecord().stderr.trim().split('\n').at(-1)).toMatch(message)
      expect(g.hookRecord().rc.split('\n').at(-1)).toBe('2')
    }
    // Our own process was named as the pid with a bad bundle: it was not killed, and nothing was created.
    expect(existsSync(join(g.contrast, 'secrets'))).toBe(false)
  })
})
