import { X509Certificate } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import { certificateHasName, unmapAddress } from '../../../src/dataplane/builtin/peer-name.js'
import { sharedTestPki, type LeafOptions } from '../../fixtures/pki.js'

const cases: [string, LeafOptions, string, boolean][] = [
  ['exact DNS SAN', { dns: ['b.mesh'] }, 'b.mesh', true],
  ['DNS SAN, other case', { dns: ['B.Mesh'] }, 'b.mesh', true],
  ['one of several DNS SANs', { dns: ['a.mesh', 'b.mesh'] }, 'b.mesh', true],
  ['a different DNS SAN', { dns: ['c.mesh'] }, 'b.mesh', false],
  ['subject CN only, never used', { cn: 'b.mesh', dns: ['c.mesh'] }, 'b.mesh', false],
  ['CN without any SAN', { cn: 'b.mesh' }, 'b.mesh', false],
  ['wildcard SAN, not honoured', { dns: ['*.mesh'] }, 'b.mesh', false],
  ['parent domain SAN', { dns: ['mesh'] }, 'b.mesh', false],
  ['IPv4 as IP SAN', { ip: ['10.0.0.7'] }, '10.0.0.7', true],
  ['IPv4 only as a DNS SAN', { dns: ['10.0.0.7'] }, '10.0.0.7', false],
  ['IPv4, different IP SAN', { ip: ['10.0.0.8'] }, '10.0.0.7', false],
  ['IPv6 as IP SAN', { ip: ['fd00::7'] }, 'fd00::7', true],
  ['IPv6, non-canonical spelling of the expected name', { ip: ['fd00::7'] }, 'fd00:0:0::7', true],
  ['DNS name against an IP SAN', { ip: ['10.0.0.7'] }, 'b.mesh', false],
]

describe('certificateHasName', () => {
  const certs = new Map<string, X509Certificate>()
  beforeAll(async () => {
    const pki = await sharedTestPki()
    for (const [name, opts] of cases) certs.set(name, new X509Certificate((await pki.issue(opts)).certPem))
  })
  it.each(cases)('%s', (name, _opts, expected, result) => {
    expect(certificateHasName(certs.get(name)!, expected)).toBe(result)
  })
})

describe('unmapAddress', () => {
  it.each([
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['10.1.2.3', '10.1.2.3'],
    ['fd00::1', 'fd00::1'],
    ['::ffff:fd00', '::ffff:fd00'],
  ])('%s -> %s', (input, output) => {
    expect(unmapAddress(input)).toBe(output)
  })
})
