import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SDS_FILES, SECRET_NAMES } from '../../../src/dataplane/envoy/bootstrap.js'
import { readTlsDir } from '../../../src/pki/index.js'
import { renderSdsResources, writeSdsResources } from '../../../src/dataplane/envoy/sds.js'

const VECTORS = join(import.meta.dirname, 'vectors')
const GEN1 = (await readTlsDir(join(VECTORS, 'gen1'))).material
const GEN2 = (await readTlsDir(join(VECTORS, 'gen2'))).material
import { thrown } from '../../support.js'
import { validateMessage } from './schema.js'

const MATERIAL = {
  meshCa: '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n',
  certChain: '-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n',
  key: '-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n',
}

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'envoy-sds-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('renderSdsResources', () => {
  it('renders one Secret per file, named as the bootstrap references it, valid DiscoveryResponses', async () => {
    const files = renderSdsResources(MATERIAL)
    expect(Object.keys(files).sort()).toEqual([SDS_FILES.validation, SDS_FILES.certificate].sort())
    for (const text of Object.values(files)) {
      expect(validateMessage('envoy.service.discovery.v3.DiscoveryResponse', JSON.parse(text))).toEqual([])
    }
    const ca = JSON.parse(files[SDS_FILES.validation])
    expect(ca.resources).toHaveLength(1)
    expect(ca.resources[0]).toEqual({
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
      name: SECRET_NAMES.validation,
      validation_context: { trusted_ca: { inline_string: MATERIAL.meshCa } },
    })
    const cert = JSON.parse(files[SDS_FILES.certificate])
    expect(cert.resources[0].name).toBe(SECRET_NAMES.certificate)
    expect(cert.resources[0].tls_certificate).toEqual({
      certificate_chain: { inline_string: MATERIAL.certChain },
      private_key: { inline_string: MATERIAL.key },
    })
    await expect(files[SDS_FILES.certificate]).toMatchFileSnapshot('golden/sds-cert.json')
    await expect(files[SDS_FILES.validation]).toMatchFileSnapshot('golden/sds-ca.json')
  })
})

describe('writeSdsResources', () => {
  it('writes both files 0600, leaves no temp files, and replaces them by rename', () => {
    const sds = join(dir, 'sds')
    writeSdsResources(sds, GEN1)
    expect(readdirSync(sds).sort()).toEqual([SDS_FILES.validation, SDS_FILES.certificate].sort())
    for (const f of readdirSync(sds)) expect(statSync(join(sds, f)).mode & 0o777).toBe(0o600)
    const before = statSync(join(sds, SDS_FILES.certificate)).ino
    writeSdsResources(sds, GEN2)
    const after = statSync(join(sds, SDS_FILES.certificate))
    // A new inode: the old file was replaced by a move, which is what Envoy's directory watch reacts to.
    expect(after.ino).not.toBe(before)
    expect(JSON.parse(readFileSync(join(sds, SDS_FILES.certificate), 'utf8')).resources[0].tls_certificate.certificate_chain.inline_string).toBe(GEN2.certChain)
    expect(readdirSync(sds).sort()).toEqual([SDS_FILES.validation, SDS_FILES.certificate].sort())
  })

  it('fails typed when the directory cannot be created', () => {
    writeFileSync(join(dir, 'file'), '')
    const err = thrown(() => writeSdsResources(join(dir, 'file', 'sds'), GEN1))
    expect(err).toMatchObject({ code: 'ENVOY_WRITE', details: { path: join(dir, 'file', 'sds') } })
  })

  it('writes nothing when the key does not match the leaf', () => {
    const sds = join(dir, 'sds')
    expect(thrown(() => writeSdsResources(sds, { ...GEN1, key: GEN2.key }))).toMatchObject({ code: 'DATAPLANE_CREDENTIALS' })
    expect(() => readdirSync(sds)).toThrow()
  })
})
