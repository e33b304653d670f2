import { describe, expect, it } from 'vitest'
import { requireCheckedMaterial } from '../../src/dataplane/checked-material.js'
import { checkTlsMaterial } from '../../src/pki/index.js'
import { sharedTestPki } from '../fixtures/pki.js'
import { thrown } from '../support.js'

describe('requireCheckedMaterial', () => {
  it('takes material pki checked as it is, with what pki found', async () => {
    const pki = await sharedTestPki()
    const m = pki.material(await pki.issue({ dns: ['a.mesh'], ip: ['10.0.0.1'] }))
    const info = checkTlsMaterial(m)
    expect(requireCheckedMaterial(m)).toBe(info)
  })

  it('checks anything else once, through pki', async () => {
    const pki = await sharedTestPki()
    const m = pki.material(await pki.issue({ dns: ['a.mesh'], ip: ['10.0.0.1'] }))
    const info = requireCheckedMaterial(m)
    expect(info.sans).toBe('DNS:a.mesh, IP Address:10.0.0.1')
    expect(requireCheckedMaterial(m)).toBe(info)
  })

  it.each([
    ['meshCa', { meshCa: 'not pem' }],
    ['certChain', { certChain: '' }],
    ['certChain', { certChain: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' }],
  ])('names %s when it holds no usable certificate', async (field, patch) => {
    const pki = await sharedTestPki()
    const good = pki.material(await pki.issue({ dns: ['a.mesh'] }))
    expect(thrown(() => requireCheckedMaterial({ ...good, ...patch }))).toMatchObject({ code: 'DATAPLANE_CREDENTIALS', details: { field } })
  })

  it('rejects a key that does not match the leaf', async () => {
    const pki = await sharedTestPki()
    const good = pki.material(await pki.issue({ dns: ['a.mesh'] }))
    const other = await pki.issue({ dns: ['b.mesh'] })
    const err = thrown(() => requireCheckedMaterial({ ...good, key: other.keyPem }))
    expect(err.code).toBe('DATAPLANE_CREDENTIALS')
    expect(String(err.details.reason)).toMatch(/key\.pem does not belong to the leaf/)
  })
})
