// @peculiar/x509 needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata'
import { X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { describe, expect, it } from 'vitest'
import { checkTlsMaterial, generateKeyPair } from '../../src/pki/index.js'
import { createAuthority, issueLeaf } from '../../src/pki/issuing.js'

describe('issueLeaf', () => {
  it('appends extra extensions after the profile, with their criticality, and the leaf still checks', async () => {
    const ca = await createAuthority({ commonName: 'test mesh CA', curve: 'P-384' })
    const kp = await generateKeyPair()
    const der = Uint8Array.from([0x04, 0x03, 0xde, 0xad, 0x01])
    const leaf = await issueLeaf(ca, { sans: ['web'], publicKey: kp.keys.publicKey, extraExtensions: [{ oid: '1.3.9901.2.1.22', critical: false, der }] })
    const parsed = new x509.X509Certificate(leaf.certificatePem)
    const ext = parsed.extensions.at(-1)!
    expect([ext.type, ext.critical, Buffer.from(ext.value).toString('hex')]).toEqual(['1.3.9901.2.1.22', false, '0403dead01'])
    // The profile's own extensions come first, unchanged.
    expect(parsed.extensions.slice(0, -1).map((e) => e.type)).toEqual(['2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.17', '2.5.29.35'])
    expect(checkTlsMaterial({ meshCa: ca.certificatePem, certChain: leaf.certificatePem, key: kp.privateKeyPem }).subject).toBe('CN=web')
    expect(new X509Certificate(leaf.certificatePem).subjectAltName).toBe('DNS:web')
  })
})
