import { mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkTlsMaterial, generateKeyPair, checkedTlsInfo, readTlsDir, watchTlsDir, writeTlsDir } from '../../src/pki/index.js'
import { createAuthority, issueLeaf, type Authority } from '../../src/pki/issuing.js'
import { logSink, rejected, thrown } from '../support.js'

let root: Authority
let intermediate: Authority
let other: Authority

async function leafMaterial(ca: Authority, sans: string[], chainCa: Authority[] = [ca]) {
  const kp = await generateKeyPair()
  const leaf = await issueLeaf(ca, { sans, publicKey: kp.keys.publicKey })
  return {
    meshCa: chainCa.map((c) => c.certificatePem).join(''),
    certChain: leaf.certificatePem + (ca === intermediate ? intermediate.certificatePem : ''),
    key: kp.privateKeyPem,
  }
}

beforeAll(async () => {
  root = await createAuthority({ commonName: 'test root' })
  intermediate = await createAuthority({ commonName: 'test intermediate', issuer: root })
  other = await createAuthority({ commonName: 'other root' })
})

describe('checkTlsMaterial', () => {
  it('accepts leaf ‖ intermediate against the root, and reports the leaf', async () => {
    const m = await leafMaterial(intermediate, ['b.mesh', '10.0.0.2'], [root])
    const info = checkTlsMaterial(m)
    expect(info.subject).toBe('CN=b.mesh')
    expect(info.sans).toContain('DNS:b.mesh')
    expect(info.sans).toContain('IP Address:10.0.0.2')
    expect(info.notAfter.getTime()).toBeGreaterThan(Date.now())
  })

  it('remembers what it accepted (frozen) with what it found, so data planes do not parse it again', async () => {
    const m = await leafMaterial(intermediate, ['b.mesh'], [root])
    expect(checkedTlsInfo(m)).toBeUndefined()
    const info = checkTlsMaterial(m)
    expect(checkedTlsInfo(m)).toBe(info)
    expect(Object.isFrozen(m)).toBe(true)
    expect(checkedTlsInfo({ ...m })).toBeUndefined()
    const bad = { ...m, key: (await leafMaterial(intermediate, ['c.mesh'], [root])).key }
    expect(() => checkTlsMaterial(bad)).toThrow()
    expect(checkedTlsInfo(bad)).toBeUndefined()
  })

  it('accepts a mesh-CA bundle during rotation (leaf from the second CA)', async () => {
    const m = await leafMaterial(other, ['b.mesh'], [root, other])
    expect(checkTlsMaterial(m).subject).toBe('CN=b.mesh')
  })

  it('refuses a key that belongs to another certificate', async () => {
    const m = await leafMaterial(root, ['b.mesh'])
    const stranger = await generateKeyPair()
    const err = thrown(() => checkTlsMaterial({ ...m, key: stranger.privateKeyPem }))
    expect(err).toMatchObject({ code: 'PKI_KEY_MISMATCH' })
  })

  it('refuses a chain that does not lead to the mesh CA', async () => {
    const m = await leafMaterial(other, ['b.mesh'], [root])
    expect(thrown(() => checkTlsMaterial(m))).toMatchObject({ code: 'PKI_CHAIN_UNTRUSTED' })
  })

  it.each([
    ['meshCa', 'mesh-ca.pem'],
    ['certChain', 'certChain.pem'],
  ] as const)('refuses an empty %s', async (field, file) => {
    const m = await leafMaterial(root, ['b.mesh'])
    expect(thrown(() => checkTlsMaterial({ ...m, [field]: 'garbage' }))).toMatchObject({
      code: 'PKI_BAD_PEM',
      details: { file },
    })
  })
})

describe('the Contrast file layout', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pm-pki-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('writes the files with Contrast’s modes and reads them back', async () => {
    const m = await leafMaterial(root, ['a.mesh'])
    await writeTlsDir(dir, { ...m, rootCa: root.certificatePem })
    expect((await stat(join(dir, 'key.pem'))).mode & 0o777).toBe(0o400)
    expect((await stat(join(dir, 'certChain.pem'))).mode & 0o777).toBe(0o444)
    expect(await readFile(join(dir, 'coordinator-root-ca.pem'), 'utf8')).toBe(root.certificatePem)
    const { material, info } = await readTlsDir(dir)
    expect(material).toEqual(m)
    expect(info.subject).toBe('CN=a.mesh')
  })

  it('names the missing file', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'pm-pki-empty-'))
    const err = await rejected(readTlsDir(empty))
    expect(err).toMatchObject({ code: 'PKI_MISSING_FILE', details: { file: 'mesh-ca.pem' } })
    await rm(empty, { recursive: true })
  })

  it('reports a new consistent set once, and skips a half-written one', async () => {
    const first = await leafMaterial(root, ['a.mesh'])
    await writeTlsDir(dir, first)
    const sink = logSink()
    const log = pino({ level: 'debug' }, sink)
    const seen: string[] = []
    const watcher = watchTlsDir(dir, (_m, info) => seen.push(info.subject), { log, debounceMs: 50, current: first })
    try {
      // A chain without its key: not usable, must not be reported.
      const second = await leafMaterial(root, ['second.mesh'])
      // Replaced the way writers do (temp file, rename): the store wrote it 0400, which only
      // root could overwrite in place, and the suite also runs unprivileged (test-ahead.sh).
      await writeFile(join(dir, '.certChain.pem.tmp'), second.certChain)
      await rename(join(dir, '.certChain.pem.tmp'), join(dir, 'certChain.pem'))
      await new Promise((r) => setTimeout(r, 300))
      expect(seen).toEqual([])
      expect(sink.records.some((r) => r['msg'] === 'certificate files changed but are not usable yet; keeping the previous set')).toBe(true)
      // Completing the set reports it exactly once.
      await writeTlsDir(dir, second)
      await new Promise((r) => setTimeout(r, 300))
      expect(seen).toEqual(['CN=second.mesh'])
    } finally {
      watcher.close()
    }
  })
})
