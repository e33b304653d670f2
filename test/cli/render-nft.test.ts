import { describe, expect, it } from 'vitest'
import { main } from '../../src/cli.js'
import { meshConfigFromStrings } from '../../src/config/index.js'
import { renderBaseline, renderFinal } from '../../src/netfilter/render.js'
import { capturedIo } from './io.js'

function io(env: NodeJS.ProcessEnv = {}) {
  const c = capturedIo({ env })
  return { io: c, out: c.out, err: c.err }
}

describe('podvm-mesh render nft', () => {
  it('prints the ip commands, then the nft script, for the flags given', async () => {
    const t = io()
    expect(await main(['render', 'nft', '--ingress', 'metrics#9000#true'], t.io)).toBe(0)
    const want = renderFinal(meshConfigFromStrings({ ingress: { value: 'metrics#9000#true', source: 'test' } }))
    expect(t.out()).toBe(
      'ip -4 rule add fwmark 0x50e lookup 150\n' +
        'ip -4 route replace local 0.0.0.0/0 dev lo table 150\n' +
        'ip -6 rule add fwmark 0x50e lookup 150\n' +
        'ip -6 route replace local ::/0 dev lo table 150\n' +
        want.nft,
    )
    expect(t.out()).toContain('tcp dport 9000 counter accept comment "passthrough metrics"')
  })

  it('reads the environment like check does when no flag is given', async () => {
    const t = io({ CONTRAST_INGRESS_PROXY_CONFIG: 'DISABLED' })
    expect(await main(['render', 'nft'], t.io)).toBe(0)
    expect(t.out()).not.toContain('tproxy')
  })

  it('--baseline prints exactly the baseline script (no routes), whatever the environment holds', async () => {
    const t = io({ CONTRAST_INGRESS_PROXY_CONFIG: 'not#a#valid#entry' })
    expect(await main(['render', 'nft', '--baseline'], t.io)).toBe(0)
    expect(t.out()).toBe(renderBaseline().nft)
  })

  it('--boot prints what run installs first for this config: the baseline plus the egress capture', async () => {
    const t = io()
    expect(await main(['render', 'nft', '--boot', '--transparent-egress'], t.io)).toBe(0)
    const want = renderBaseline(meshConfigFromStrings({ transparentEgress: { value: true, source: 'test' } }))
    expect(t.out()).toContain(want.nft)
    expect(want.nft).toContain('tproxy to :15001')
    expect(want.nft).toContain('baseline: nothing inbound before the mesh is ready')
  })

  it('--baseline with config flags is a usage error', async () => {
    const t = io()
    expect(await main(['render', 'nft', '--baseline', '--ingress', 'DISABLED'], t.io)).toBe(2)
    expect(t.out()).toBe('')
  })

  it('a bad config exits 2 with the config problems on stderr and nothing on stdout', async () => {
    const t = io()
    expect(await main(['render', 'nft', '--ingress', 'web#99999#true'], t.io)).toBe(2)
    expect(t.out()).toBe('')
    expect(t.err()).toMatch(/--ingress/)
  })
})
