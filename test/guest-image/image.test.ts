// Builds the guest image (`npm run image`: tsc, then mkosi 14 from Debian) and checks the
// tree it produced: the units are there, enabled, and accepted by `systemd-analyze verify`
// inside the tree; the baseline unit's ruleset loads with `nft -c`; the daemon inside the
// tree, on the tree's own Node.js, answers `podvm-mesh check` when run via chroot.
// Slow (about a minute with a warm apt mirror; it downloads Debian packages each time).
// Needs root and mkosi; under CI=true their absence fails, elsewhere it skips.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { existsSync, readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, it, expect } from 'vitest'
import { meshConfigFromStrings } from '../../src/config/index.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const TREE = join(ROOT, 'mkosi.output/podvm-mesh-guest')
const BUILD_TIMEOUT_MS = 9 * 60_000

function run(cmd: string, args: string[], timeout = 60_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout })
}

function missingCapability(): string | undefined {
  if (process.getuid?.() !== 0) return 'building the image needs root (mkosi, chroot)'
  for (const tool of ['mkosi', 'systemd-analyze', 'nft', 'chroot']) {
    if (run('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (scripts/setup.sh installs it)`
  }
  return undefined
}

const missing = missingCapability()
const CI = process.env['CI'] === 'true'

describe.skipIf(missing !== undefined && !CI)(`guest image${missing !== undefined ? ` (skipped: ${missing})` : ''}`, () => {
  let build: SpawnSyncReturns<string>
  let seconds = 0

  beforeAll(() => {
    if (missing !== undefined) throw new Error(`CI=true and ${missing}`)
    const t0 = Date.now()
    build = run('npm', ['run', 'image'], BUILD_TIMEOUT_MS)
    seconds = (Date.now() - t0) / 1000
  }, BUILD_TIMEOUT_MS + 30_000)

  it('npm run image builds the tree', () => {
    expect(build.error, String(build.error)).toBeUndefined()
    expect(build.status, `${build.stdout.slice(-3000)}\n${build.stderr.slice(-3000)}`).toBe(0)
    expect(existsSync(join(TREE, 'usr/lib/os-release'))).toBe(true)
    expect(readFileSync(join(TREE, 'usr/lib/os-release'), 'utf8')).toMatch(/VERSION_CODENAME=bookworm/)
    console.info(`guest image built in ${seconds.toFixed(0)} s`)
  })

  it('has both units, enabled as their [Install] sections say', () => {
    for (const unit of ['podvm-mesh-baseline.service', 'podvm-mesh.service']) expect(existsSync(join(TREE, 'usr/lib/systemd/system', unit)), unit).toBe(true)
    const link = (p: string) => readlinkSync(join(TREE, 'etc/systemd/system', p))
    expect(link('kata-agent.service.requires/podvm-mesh-baseline.service')).toBe('/usr/lib/systemd/system/podvm-mesh-baseline.service')
    expect(link('sysinit.target.wants/podvm-mesh-baseline.service')).toBe('/usr/lib/systemd/system/podvm-mesh-baseline.service')
    expect(link('multi-user.target.wants/podvm-mesh.service')).toBe('/usr/lib/systemd/system/podvm-mesh.service')
    // Debian's nftables.service would `flush ruleset` at boot, removing the mesh's table.
    expect(link('nftables.service')).toBe('/dev/null')
    expect(link('local-fs.target.wants/contrast.mount')).toBe('/usr/lib/systemd/system/contrast.mount')
  })

  it.each(['podvm-mesh-baseline.service', 'podvm-mesh.service', 'contrast.mount'])('systemd-analyze verify --root accepts %s without a warning', (unit) => {
    // --root resolves the unit and its ExecStart binary inside the tree: a missing
    // /usr/sbin/nft or /usr/local/bin/podvm-mesh there fails the verify.
    const r = run('systemd-analyze', ['verify', `--root=${TREE}`, unit])
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr.trim()).toBe('')
  })

  it("the baseline unit's ruleset is what the tree's podvm-mesh render nft --baseline prints, and loads with nft -c, with the host's nft and the image's", () => {
    const unit = readFileSync(join(TREE, 'usr/lib/systemd/system/podvm-mesh-baseline.service'), 'utf8')
    const file = /^ExecStart=\/usr\/sbin\/nft -f (\S+)$/m.exec(unit)?.[1]
    expect(file).toBe('/etc/podvm-mesh/baseline.nft')
    const rendered = run('chroot', [TREE, '/usr/local/bin/podvm-mesh', 'render', 'nft', '--baseline'])
    expect(rendered.status, rendered.stderr).toBe(0)
    expect(readFileSync(join(TREE, file as string), 'utf8')).toBe(rendered.stdout)
    const host = run('nft', ['-c', '-f', join(TREE, file as string)])
    expect(host.status, host.stderr).toBe(0)
    const inImage = run('chroot', [TREE, '/usr/sbin/nft', '-c', '-f', file as string])
    expect(inImage.status, inImage.stderr).toBe(0)
  })

  it("the final rulesets the daemon renders load with the image's nft (nft resolves protocol names from the image's /etc/protocols)", () => {
    // Without netbase in the image this fails ("Could not resolve protocol name"), as the
    // daemon did at boot in test/vm before the package was added.
    for (const args of [[], ['--egress', 'db#127.137.0.1:5432#db-svc:5432', '--transparent-egress']]) {
      const rendered = run('chroot', [TREE, '/usr/local/bin/podvm-mesh', 'render', 'nft', ...args])
      expect(rendered.status, rendered.stderr).toBe(0)
      const script = rendered.stdout.split('\n').filter((l) => !l.startsWith('ip ')).join('\n')
      const r = spawnSync('chroot', [TREE, '/usr/sbin/nft', '-c', '-f', '-'], { input: script, encoding: 'utf8' })
      expect(r.status, r.stderr).toBe(0)
    }
  })

  it('the Node.js in the tree is >= 20', () => {
    const r = run('chroot', [TREE, '/opt/podvm-mesh/node/bin/node', '-p', 'process.versions.node'])
    expect(r.status, r.stderr).toBe(0)
    expect(Number(r.stdout.trim().split('.')[0])).toBeGreaterThanOrEqual(20)
  })

  it('the daemon in the tree answers podvm-mesh check via chroot, as the host code does', () => {
    const ingress = 'metrics#9090#true##public#8443#false'
    const egress = 'db#127.137.0.1:5432#db-svc:5432'
    const r = run('chroot', [TREE, '/usr/local/bin/podvm-mesh', 'check', '--ingress', ingress, '--egress', egress, '--admin-port', '9901'])
    expect(r.status, r.stderr).toBe(0)
    const want = meshConfigFromStrings({
      ingress: { value: ingress, source: '--ingress' },
      egress: { value: egress, source: '--egress' },
      adminPort: { value: '9901', source: '--admin-port' },
    })
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(JSON.stringify(want)))
  })

  it('the daemon in the tree rejects a bad config with exit 2 and the entry', () => {
    const r = run('chroot', [TREE, '/usr/local/bin/podvm-mesh', 'check', '--ingress', 'web#99999#false'])
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('"web#99999#false": PORT_OUT_OF_RANGE')
  })

  it('carries Envoy, which runs in the tree, so run --dataplane auto picks it', () => {
    const r = run('chroot', [TREE, '/usr/local/bin/envoy', '--version'])
    expect(r.status).toBe(0)
    expect(r.stdout).toMatch(/version: [0-9a-f]+\/1\.40\.0\//)
  })

  it('ships production dependencies only', () => {
    const mods = join(TREE, 'opt/podvm-mesh/node_modules')
    expect(existsSync(join(mods, 'pino'))).toBe(true)
    expect(existsSync(join(mods, 'koffi'))).toBe(true)
    for (const dev of ['vitest', 'typescript', '@grpc/grpc-js-xds']) expect(existsSync(join(mods, dev)), dev).toBe(false)
  })
})
