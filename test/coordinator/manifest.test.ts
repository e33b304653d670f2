import { describe, expect, it } from 'vitest'
import { lookupPolicy, parseManifest } from '../../src/coordinator/index.js'
import { thrown } from '../support.js'
import { HOST_A, manifestText } from './harness.js'

describe('parseManifest', () => {
  it('reads policies, defaults and the hash of the exact text', () => {
    const text = manifestText()
    const m = parseManifest(text)
    expect(m.policies.get(HOST_A)).toEqual({ sans: ['a.mesh.test'], workloadSecretId: 'default/a', role: '' })
    expect(m.acceptSimulated).toBe(true)
    expect(m.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(parseManifest(JSON.stringify({ policies: {} })).acceptSimulated).toBe(false)
  })

  it.each([
    ['not JSON', '{', ''],
    ['an unknown top-level key', JSON.stringify({ policies: {}, extra: 1 }), ''],
    ['a policy key that is not hex of 32/48 bytes', JSON.stringify({ policies: { abcd: { sans: ['x'] } } }), 'policies.abcd'],
    ['a policy without SANs', JSON.stringify({ policies: { [HOST_A]: { sans: [] } } }), `policies.${HOST_A}.sans`],
    ['a SAN with a space', JSON.stringify({ policies: { [HOST_A]: { sans: ['a b'] } } }), `policies.${HOST_A}.sans.0`],
    ['a bad role', JSON.stringify({ policies: { [HOST_A]: { sans: ['a'], role: 'admin' } } }), `policies.${HOST_A}.role`],
    ['a short measurement', JSON.stringify({ policies: {}, referenceValues: { snp: { measurements: ['00'] } } }), 'referenceValues.snp.measurements.0'],
    ['an unknown product', JSON.stringify({ policies: {}, referenceValues: { snp: { products: ['Naples'] } } }), 'referenceValues.snp.products.0'],
    ['a TCB out of range', JSON.stringify({ policies: {}, referenceValues: { snp: { minimumTcb: { snp: 256 } } } }), 'referenceValues.snp.minimumTcb.snp'],
    ['an RTMR index out of range', JSON.stringify({ policies: {}, referenceValues: { tdx: { rtmr: { '4': [] } } } }), 'referenceValues.tdx.rtmr'],
  ])('refuses %s, naming the path', (_name, text, path) => {
    const err = thrown(() => parseManifest(text, 'm.json'))
    expect(err).toMatchObject({ code: 'COORDINATOR_MANIFEST_INVALID', details: { source: 'm.json' } })
    expect(err.details.issues.map((i: { path: string }) => i.path)).toContain(path)
  })
})

describe('lookupPolicy', () => {
  // A 32-byte digest as Kata puts it into MRCONFIGID: zero-padded to 48 bytes.
  const mrConfigId = Buffer.concat([Buffer.from('12'.repeat(32), 'hex'), Buffer.alloc(16)])
  const m = parseManifest(
    JSON.stringify({
      policies: {
        [HOST_A]: { sans: ['a'] },
        ['12'.repeat(32)]: { sans: ['tdx-by-prefix'] },
        ['34'.repeat(48)]: { sans: ['tdx-whole'] },
      },
    }),
  )
  it('finds SNP HOST_DATA', () => {
    expect(lookupPolicy(m, Buffer.from(HOST_A, 'hex'))?.policy.sans).toEqual(['a'])
  })
  it('finds TDX MRCONFIGID whole, or by its first 32 bytes as Contrast does', () => {
    expect(lookupPolicy(m, Buffer.from('34'.repeat(48), 'hex'))?.key).toBe('34'.repeat(48))
    expect(lookupPolicy(m, mrConfigId)?.key).toBe('12'.repeat(32))
  })
  it('does not match the 32-byte prefix when the other 16 bytes are not zero', () => {
    expect(lookupPolicy(m, Buffer.from('12'.repeat(48), 'hex'))).toBeUndefined()
  })
  it('misses an unknown hash', () => {
    expect(lookupPolicy(m, Buffer.alloc(32, 0xee))).toBeUndefined()
  })
})
