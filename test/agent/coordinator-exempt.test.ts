import { describe, expect, it } from 'vitest'
import { exemptCoordinator } from '../../src/agent/coordinator-exempt.js'
import { meshConfigFromStrings } from '../../src/config/index.js'

const capture = meshConfigFromStrings({
  transparentEgress: { value: true, source: 't' },
  allowPlaintext: { value: '10.0.0.0/8', source: 'a' },
})

describe('exemptCoordinator', () => {
  it('adds every address of the coordinator, for its port only, to the plaintext allow-list', async () => {
    const lookup = async () => [
      { address: '10.80.0.1', family: 4 },
      { address: 'fd00:50::1', family: 6 },
    ]
    const config = await exemptCoordinator(capture, 'coordinator.mesh.test:7777', lookup)
    expect(config.transparentEgress.allowPlaintext).toEqual([
      { cidr: '10.0.0.0/8', family: 4 },
      { cidr: '10.80.0.1/32', family: 4, port: 7777 },
      { cidr: 'fd00:50::1/128', family: 6, port: 7777 },
    ])
  })

  it('takes IP literals as they are, brackets removed', async () => {
    const config = await exemptCoordinator(capture, '[fd00::7]:7777', async () => {
      throw new Error('must not resolve an IP literal')
    })
    expect(config.transparentEgress.allowPlaintext.at(-1)).toEqual({ cidr: 'fd00::7/128', family: 6, port: 7777 })
  })

  it('leaves a config without transparent egress alone', async () => {
    const plain = meshConfigFromStrings({})
    expect(await exemptCoordinator(plain, 'coordinator:7777', async () => [])).toBe(plain)
  })
})
