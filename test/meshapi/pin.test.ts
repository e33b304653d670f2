import { describe, expect, it } from 'vitest'
import { parseCoordinatorIdentity, requireMeasurementPin } from '../../src/meshapi/index.js'
import { thrown } from '../support.js'

describe('parseCoordinatorIdentity', () => {
  it.each([
    [`policy:${'AB'.repeat(32)}`, { kind: 'policy-hash', hex: 'ab'.repeat(32) }],
    ['cd'.repeat(48), { kind: 'policy-hash', hex: 'cd'.repeat(48) }],
    [`root-ca:${'0f'.repeat(32)}`, { kind: 'root-ca', sha256: '0f'.repeat(32) }],
    [`root-ca:${Array(32).fill('0F').join(':')}`, { kind: 'root-ca', sha256: '0f'.repeat(32) }],
  ])('%s', (text, want) => {
    expect(parseCoordinatorIdentity(text)).toEqual(want)
  })

  it.each(['', 'policy:abc', `root-ca:${'0f'.repeat(31)}`, `hostdata:${'ab'.repeat(32)}`, 'zz'.repeat(32)])('refuses %j', (text) => {
    expect(parseCoordinatorIdentity(text)).toBeUndefined()
  })
})

describe('requireMeasurementPin', () => {
  it('refuses a policy-hash pin without measurements for real SNP and TDX evidence', () => {
    for (const tee of ['snp', 'tdx']) {
      expect(thrown(() => requireMeasurementPin(undefined, tee))).toMatchObject({ code: 'COORDINATOR_UNTRUSTED', details: { step: 'identity', tee } })
    }
  })
  it('accepts it with measurements, and for simulated evidence', () => {
    expect(() => requireMeasurementPin(['00'.repeat(48)], 'snp')).not.toThrow()
    expect(() => requireMeasurementPin(undefined, 'simulated')).not.toThrow()
  })
})
