// Fast checks of what guest-image/ commits; test/guest-image/image.test.ts builds the image.
import { readFileSync } from 'node:fs'
import { describe, it, expect } from 'vitest'
import { Writable } from 'node:stream'
import { main } from '../../src/cli.js'

const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8')

/** `[Section]` → key → values, in order (systemd allows repeated keys). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>()
  let section: Map<string, string[]> | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const head = /^\[(.+)\]$/.exec(line)
    if (head) {
      section = new Map()
      out.set(head[1] as string, section)
      continue
    }
    const eq = line.indexOf('=')
    if (section === undefined || eq < 0) throw new Error(`not a unit line: ${line}`)
    const key = line.slice(0, eq).trim()
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()])
  }
  return out
}

const words = (unit: Map<string, Map<string, string[]>>, section: string, key: string) =>
  (unit.get(section)?.get(key) ?? []).flatMap((v) => v.split(/\s+/))

describe('guest-image units', () => {
  const baseline = parseUnit(read('guest-image/tree/usr/lib/systemd/system/podvm-mesh-baseline.service'))
  const daemon = parseUnit(read('guest-image/tree/usr/lib/systemd/system/podvm-mesh.service'))

  it('podvm-mesh-baseline.service: oneshot, kept active, before and required by kata-agent, loads the baseline file', () => {
    expect(baseline.get('Service')?.get('Type')).toEqual(['oneshot'])
    expect(baseline.get('Service')?.get('RemainAfterExit')).toEqual(['yes'])
    expect(words(baseline, 'Unit', 'Before')).toContain('kata-agent.service')
    expect(words(baseline, 'Install', 'RequiredBy')).toEqual(['kata-agent.service'])
    expect(baseline.get('Service')?.get('ExecStart')).toEqual(['/usr/sbin/nft -f /etc/podvm-mesh/baseline.nft'])
    // Early boot: no implicit ordering after basic.target, which would come after kata's target.
    expect(baseline.get('Unit')?.get('DefaultDependencies')).toEqual(['no'])
  })

  it('podvm-mesh.service: restarts on failure, needs the baseline, not ordered before kata-agent (it waits for the pod network)', () => {
    expect(daemon.get('Service')?.get('Restart')).toEqual(['on-failure'])
    expect(words(daemon, 'Unit', 'Requires')).toContain('podvm-mesh-baseline.service')
    expect(words(daemon, 'Unit', 'After')).toContain('podvm-mesh-baseline.service')
    expect(words(daemon, 'Unit', 'Before')).not.toContain('kata-agent.service')
  })

  it('podvm-mesh.service: bounded memory and descriptors, and not protected from the OOM killer at the workload\'s expense', () => {
    const service = daemon.get('Service')
    const bytes = (v: string): number => {
      const m = /^(\d+)([KMG]?)$/.exec(v)
      if (m === null) throw new Error(`not a byte size: ${v}`)
      return Number(m[1]) * { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2] as '' | 'K' | 'M' | 'G']
    }
    const [high, max] = [service?.get('MemoryHigh'), service?.get('MemoryMax')].map((v) => bytes(v?.at(-1) ?? 'unset'))
    // Throttled before it is capped, and both bounded well below a pod VM's memory (Kata's default is 2 GiB).
    expect(high).toBeLessThan(max as number)
    expect(max).toBeLessThanOrEqual(1 * 2 ** 30)
    expect(Number(service?.get('LimitNOFILE')?.at(-1))).toBeGreaterThanOrEqual(4 * 1024)
    // A mesh that dies fails closed; the workload must not be the one killed first.
    expect(Number(service?.get('OOMScoreAdjust')?.at(-1) ?? 0)).toBeGreaterThanOrEqual(0)
  })

  it('contrast.mount: /contrast is a tmpfs before the daemon and kata-agent, and the daemon requires it', () => {
    const mount = parseUnit(read('guest-image/tree/usr/lib/systemd/system/contrast.mount'))
    expect(mount.get('Mount')?.get('Where')).toEqual(['/contrast'])
    expect(mount.get('Mount')?.get('Type')).toEqual(['tmpfs'])
    expect(words(mount, 'Unit', 'Before')).toEqual(expect.arrayContaining(['podvm-mesh.service', 'kata-agent.service']))
    expect(words(mount, 'Install', 'WantedBy')).toEqual(['local-fs.target'])
    expect(words(daemon, 'Unit', 'RequiresMountsFor')).toEqual(['/contrast'])
    // build.sh enables it the way `systemctl enable` would.
    expect(read('guest-image/build.sh')).toContain('local-fs.target.wants/contrast.mount')
  })

  it('the committed baseline ruleset is exactly what `podvm-mesh render nft --baseline` prints', async () => {
    let out = ''
    const sink = new Writable({
      write(chunk, _enc, cb) {
        out += String(chunk)
        cb()
      },
    })
    expect(await main(['render', 'nft', '--baseline'], { stdout: sink, stderr: sink, env: {} })).toBe(0)
    expect(out).toContain('table inet podvm_mesh')
    expect(read('guest-image/tree/etc/podvm-mesh/baseline.nft')).toBe(out)
  })

  it('mkosi.conf: Debian bookworm, directory format, docs kept (mkosi 14 here), the staged tree, the packages the units use, a kernel and kmod to load its netfilter modules', () => {
    const conf = read('mkosi.conf')
    for (const line of ['Distribution=debian', 'Release=bookworm', 'Format=directory', 'WithDocs=yes', 'ExtraTree=mkosi.output/stage']) {
      expect(conf.split('\n')).toContain(line)
    }
    const lines = conf.split('\n').map((l) => l.trim())
    for (const pkg of ['systemd', 'nftables', 'iproute2', 'libstdc++6', 'kmod', 'linux-image-amd64', 'netbase']) expect(lines, pkg).toContain(pkg)
  })
})
