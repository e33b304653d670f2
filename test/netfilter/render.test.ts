import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { MeshConfig, Port } from '../../src/config/types.js'
import { formatRouteCommand, renderBaseline, renderFinal, renderTeardown, type Ruleset } from '../../src/netfilter/render.js'
import { thrown } from '../support.js'

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends readonly (infer E)[] ? Mutable<E>[] : T[K] extends object ? Mutable<T[K]> : T[K] }
const p = (n: number): Port => n as Port

/** Ingress on with no exceptions, no egress, no transparent egress, admin on loopback. */
function base(): Mutable<MeshConfig> {
  return {
    ingress: { enabled: true, rules: [] },
    egress: [],
    transparentEgress: { enabled: false, allowPlaintext: [] },
    admin: { port: p(15020), exposed: false },
  }
}

function final(mutate: (c: Mutable<MeshConfig>) => void = () => {}): Ruleset {
  const c = base()
  mutate(c)
  return renderFinal(c as unknown as MeshConfig)
}

const CASES: Record<string, () => Ruleset> = {
  default: () => final(),
  'tls-ports': () =>
    final((c) => {
      c.ingress.rules = [
        { name: 'api', port: p(8443), mode: 'tls' },
        { name: 'web', port: p(9443), mode: 'tls' },
      ]
    }),
  'passthrough-ports': () =>
    final((c) => {
      c.ingress.rules = [
        { name: 'metrics', port: p(9000), mode: 'passthrough' },
        { name: 'probe', port: p(9001), mode: 'passthrough' },
      ]
    }),
  'mixed-ports': () =>
    final((c) => {
      c.ingress.rules = [
        { name: 'api', port: p(8443), mode: 'tls' },
        { name: 'metrics', port: p(9000), mode: 'passthrough' },
      ]
    }),
  disabled: () =>
    final((c) => {
      c.ingress = { enabled: false, rules: [] }
    }),
  'admin-exposed': () =>
    final((c) => {
      c.admin = { port: p(9901), exposed: true }
    }),
  'transparent-egress': () =>
    final((c) => {
      c.transparentEgress.enabled = true
    }),
  'transparent-egress-allow-list': () =>
    final((c) => {
      c.transparentEgress = {
        enabled: true,
        allowPlaintext: [
          { cidr: '10.96.0.0/12', family: 4 },
          { cidr: '192.0.2.7/32', family: 4, port: p(5432) },
          { cidr: 'fd00:10::/64', family: 6 },
          { cidr: '2001:db8::1/128', family: 6, port: p(443) },
        ],
      }
    }),
  'transparent-egress-ingress-disabled': () =>
    final((c) => {
      c.ingress = { enabled: false, rules: [] }
      c.transparentEgress.enabled = true
    }),
  baseline: () => renderBaseline(),
  // The daemon's own boot ruleset when transparent egress is on: closed inbound, and the
  // capture already in place (held by the listener, or dropped without one).
  'baseline-transparent-egress': () => {
    const c = base()
    c.transparentEgress = { enabled: true, allowPlaintext: [{ cidr: '192.0.2.7/32', family: 4, port: p(7777) }] }
    return renderBaseline(c as unknown as MeshConfig)
  },
  teardown: () => renderTeardown(),
}

const routesText = (r: Ruleset): string => r.routes.map((c) => `${formatRouteCommand(c)}\n`).join('')

/** Rule lines per chain, from the rendered script. */
function chains(nft: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  let current: string[] | undefined
  for (const line of nft.split('\n')) {
    const open = /^\tchain (\w+) \{$/.exec(line)
    if (open?.[1] !== undefined) {
      current = []
      out.set(open[1], current)
    } else if (line === '\t}') current = undefined
    else if (current !== undefined && line.startsWith('\t\t') && !line.includes(' hook ')) current.push(line.trim())
  }
  return out
}

/**
 * Loopback addresses from any interface but lo are dropped right after lo is accepted,
 * before replies and before anything that redirects or accepts by port.
 */
function expectLoopbackFromOutsideDropped(rules: readonly string[]): void {
  const lo = rules.indexOf('iifname "lo" counter accept comment "loopback"')
  expect(lo).toBeGreaterThan(-1)
  expect(rules[lo + 2]).toBe('ip daddr 127.0.0.0/8 counter drop comment "loopback address from outside"')
  const firstOther = rules.findIndex((l, i) => i > lo && !l.startsWith('ip daddr 127.0.0.0/8 '))
  expect(firstOther).toBe(lo + 3)
}

describe('render goldens', () => {
  it.each(Object.keys(CASES))('%s', async (name) => {
    const r = CASES[name]!()
    await expect(r.nft).toMatchFileSnapshot(`golden/${name}.nft`)
    await expect(routesText(r)).toMatchFileSnapshot(`golden/${name}.routes`)
  })
})

describe('render invariants (every case)', () => {
  const all = Object.entries(CASES).map(([name, f]) => [name, f()] as const)

  it.each(all)('%s: every tproxy rule is followed in its chain by a TCP drop', (_name, r) => {
    for (const [, rules] of chains(r.nft)) {
      rules.forEach((rule, i) => {
        if (!rule.includes(' tproxy ')) return
        const later = rules.slice(i + 1)
        const tcpDrop = later.some((l) => / drop comment /.test(l) && (l.includes('meta l4proto tcp') || !/l4proto|dport/.test(l)))
        expect(tcpDrop, `no drop after: ${rule}`).toBe(true)
        // and nothing between the tproxy and that drop may accept TCP a tproxy did not capture
        const firstDrop = later.findIndex((l) => / drop comment /.test(l))
        for (const l of later.slice(0, firstDrop)) if (!l.includes(' tproxy ')) expect(l).not.toMatch(/ accept comment /)
      })
    }
  })

  it.each(all)('%s: one table, atomic and idempotent preamble, no uid matches', (name, r) => {
    expect(r.nft.match(/^table /gm) ?? []).toHaveLength(name === 'teardown' ? 0 : 1)
    expect(r.nft).toMatch(/^add table inet podvm_mesh\ndelete table inet podvm_mesh\n/m)
    expect(r.nft.indexOf('add table')).toBeLessThan(r.nft.indexOf('delete table'))
    expect(r.nft).not.toMatch(/skuid|skgid|meta uid/)
    expect(r.nft).not.toMatch(/^flush ruleset/m)
    expect(r.nft.match(/^[a-z]+ \w+ (\w+) podvm_mesh/gm)?.every((l) => l.includes('inet podvm_mesh'))).toBe(true)
  })

  it.each(all)('%s: every rule has a counter and a comment', (_name, r) => {
    for (const [, rules] of chains(r.nft)) {
      for (const rule of rules) {
        expect(rule).toMatch(/(^| )counter /)
        expect(rule).toMatch(/ comment "[^"]*"$/)
      }
    }
  })

  it('the same config renders the same bytes (pure, stable)', () => {
    for (const f of Object.values(CASES)) expect(f()).toEqual(f())
  })
})

describe('renderFinal semantics', () => {
  it('routes: fwmark rule and local default route for both families, with any config', () => {
    const want = [
      ['-4', 'rule', 'add', 'fwmark', '0x50e', 'lookup', '150'],
      ['-4', 'route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '150'],
      ['-6', 'rule', 'add', 'fwmark', '0x50e', 'lookup', '150'],
      ['-6', 'route', 'replace', 'local', '::/0', 'dev', 'lo', 'table', '150'],
    ]
    expect(final().routes).toEqual(want)
    expect(final((c) => (c.ingress = { enabled: false, rules: [] })).routes).toEqual(want)
    expect(renderBaseline().routes).toEqual([])
  })

  it('DISABLED renders no ingress rule at all (no redirection, no drop)', () => {
    const r = final((c) => (c.ingress = { enabled: false, rules: [] }))
    expect(chains(r.nft).get('prerouting')).toEqual([])
    expect(r.nft).not.toMatch(/tproxy|drop/)
  })

  it('passthrough and exposed admin ports are accepted before any tproxy; tls ports go to 15007 before the 15006 catch-all', () => {
    const rules = chains(
      final((c) => {
        c.ingress.rules = [
          { name: 'a', port: p(8443), mode: 'tls' },
          { name: 'b', port: p(9000), mode: 'passthrough' },
        ]
        c.admin = { port: p(9901), exposed: true }
      }).nft,
    ).get('prerouting')!
    const at = (re: RegExp): number => rules.findIndex((l) => re.test(l))
    const firstTproxy = at(/tproxy/)
    expect(at(/^tcp dport 9000 counter accept/)).toBeGreaterThan(-1)
    expect(at(/^tcp dport 9000 counter accept/)).toBeLessThan(firstTproxy)
    expect(at(/^tcp dport 9901 counter accept/)).toBeLessThan(firstTproxy)
    expect(at(/^tcp dport 8443 fib daddr type local tproxy to :15007 socket wildcard 1 /)).toBe(firstTproxy)
    expect(at(/^meta l4proto tcp fib daddr type local tproxy to :15006 /)).toBeGreaterThan(firstTproxy)
  })

  // Issue 10 item 2: a SYN for a foreign address must never reach the data plane.
  it.each(Object.keys(CASES).filter((n) => !/disabled|baseline|teardown/.test(n)))(
    '%s: ingress redirects only the pod’s own addresses, never marks inbound packets, and drops what is not for the pod first',
    (name) => {
      const rules = chains(CASES[name]!().nft).get('prerouting')!
      const ingress = rules.filter((l) => !l.startsWith('iifname "lo" meta mark 0x50e'))
      for (const l of ingress.filter((r) => r.includes(' tproxy '))) {
        expect(l).toMatch(/ fib daddr type local tproxy to :1500[67] socket wildcard 1 counter accept /)
      }
      expect(ingress.filter((l) => l.includes('meta mark set'))).toEqual([])
      const notForUs = rules.findIndex((l) => /^fib daddr type != \{ local, multicast, broadcast \} counter drop comment "not addressed to this pod"$/.test(l))
      expect(notForUs).toBeGreaterThan(-1)
      // Only loopback, egress capture (on lo), loopback addresses from outside (dropped) and
      // replies to the pod's own connections come before it.
      for (const l of rules.slice(0, notForUs)) expect(l).toMatch(/^(iifname "lo"|ip daddr 127\.0\.0\.0\/8 |ct direction reply|fib daddr type != )/)
      expectLoopbackFromOutsideDropped(rules)
    },
  )

  it('admin port on loopback only is not exempted', () => {
    expect(final().nft).not.toMatch(/dport 15020/)
  })

  it('transparent egress: mesh mark exempt, DNS exempt, allow-list before the capture mark, capture last', () => {
    const rules = chains(final((c) => (c.transparentEgress = { enabled: true, allowPlaintext: [{ cidr: 'fd00::/8', family: 6, port: p(80) }] })).nft).get('output')!
    expect(rules[rules.length - 1]).toMatch(/^meta l4proto tcp meta mark set 0x50e counter comment/)
    const i = (re: RegExp): number => rules.findIndex((l) => re.test(l))
    for (const re of [/^meta mark 0x50d /, /^tcp dport 53 /, /^ip6 daddr fd00::\/8 tcp dport 80 counter accept/, /^oifname "lo" /]) {
      expect(i(re)).toBeGreaterThan(-1)
      expect(i(re)).toBeLessThan(rules.length - 1)
    }
  })

  it('no output chain without transparent egress', () => {
    expect(chains(final().nft).has('output')).toBe(false)
  })

  it('names cannot break out of the quoted comment', () => {
    const r = final((c) => (c.ingress.rules = [{ name: 'x" accept\n; drop #', port: p(9000), mode: 'passthrough' }]))
    const line = chains(r.nft).get('prerouting')!.find((l) => l.includes('dport 9000'))!
    expect(line).toBe('tcp dport 9000 counter accept comment "passthrough x_ accept__ drop _"')
  })

  it.each([
    ['10.0.0.0/8; flush ruleset', 4],
    ['10.0.0.0/33', 4],
    ['10.0.0.0', 4],
    ['fd00::/64', 4],
    ['10.0.0.0/8', 6],
    ['fd00::/129', 6],
  ] as const)('a bad allow-list CIDR %j (family %i) is a typed error', (cidr, family) => {
    const err = thrown(() => final((c) => (c.transparentEgress = { enabled: true, allowPlaintext: [{ cidr, family }] })))
    expect(err).toMatchObject({ code: 'NETFILTER_INVALID_CONFIG', details: { field: 'transparentEgress.allowPlaintext[0].cidr', value: cidr } })
  })

  it('a port out of range is a typed error', () => {
    const err = thrown(() => final((c) => (c.ingress.rules = [{ name: 'x', port: p(70000), mode: 'tls' }])))
    expect(err).toMatchObject({ code: 'NETFILTER_INVALID_CONFIG', details: { field: 'ingress.rules.port', value: 70000 } })
  })
})

describe('renderBaseline semantics', () => {
  const rules = chains(renderBaseline().nft).get('prerouting')!
  it('accepts loopback, replies, packets of data-plane connections (drain) and ND, then drops everything (last rule, no protocol match)', () => {
    expect(rules[0]).toMatch(/^iifname "lo" counter accept/)
    expectLoopbackFromOutsideDropped(rules)
    expect(rules[3]).toMatch(/^ct direction reply ct state established,related counter accept/)
    expect(rules[5]).toMatch(/^fib daddr type != \{ local, multicast, broadcast \} counter drop comment "not addressed to this pod"/)
    // never a bare SYN: that is how a TIME-WAIT 4-tuple would reach the application
    expect(rules[6]).toMatch(/^meta l4proto tcp tcp flags != syn \/ syn,ack socket transparent 1 counter accept/)
    expect(rules[7]).toMatch(/^icmpv6 type \{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert, nd-redirect/)
    expect(rules[rules.length - 1]).toMatch(/^counter drop comment/)
    expect(rules.some((l) => /log prefix "podvm-mesh: baseline drop: "/.test(l))).toBe(true)
    expect(rules.some((l) => /tproxy|dport/.test(l))).toBe(false)
  })
  it('uses the same table and prerouting skeleton as the final ruleset', () => {
    const head = (s: string): string[] => s.split('\n').filter((l) => /^(add|delete|table)|\bchain prerouting|hook prerouting/.test(l))
    expect(head(renderBaseline().nft)).toEqual(head(final().nft))
  })
})

// Syntax check against the real nft parser and kernel netlink (`-c`: nothing is
// committed), in a throwaway network namespace so the host is not touched.
const execFileP = promisify(execFile)
async function nftCheckAvailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root'
  try {
    await execFileP('unshare', ['--net', 'nft', '--version'])
    return undefined
  } catch (err) {
    return `unshare --net nft unavailable: ${(err as Error).message}`
  }
}
const skipReason = await nftCheckAvailable()
if (skipReason !== undefined && process.env.CI === 'true') throw new Error(`nft -c validation is required under CI: ${skipReason}`)

describe.skipIf(skipReason !== undefined)(`nft -c accepts every rendered script${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pmnf-'))
  it.each(Object.keys(CASES))('%s', async (name) => {
    const file = join(dir, `${name}.nft`)
    writeFileSync(file, CASES[name]!().nft)
    const { stderr } = await execFileP('unshare', ['--net', 'nft', '-c', '-f', file])
    expect(stderr).toBe('')
  })
  it('rejects a corrupted script (the check can fail)', async () => {
    const file = join(dir, 'corrupt.nft')
    writeFileSync(file, CASES.default!().nft.replace('tproxy to :15006', 'tproxy too :15006'))
    await expect(execFileP('unshare', ['--net', 'nft', '-c', '-f', file])).rejects.toThrow(/syntax error|Error/)
    rmSync(dir, { recursive: true, force: true })
  })
})
