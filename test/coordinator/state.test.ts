// The coordinator's state at rest: sealed (AES-256-GCM) under a key from a sealing
// provider, so the host that stores the file can neither read the CA keys nor change
// anything in it unnoticed.

import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  chooseSealer,
  CoordinatorCa,
  CoordinatorError,
  keyFileSealer,
  loadState,
  parseManifest,
  saveState,
  simulatedSealer,
  snpDerivedKeySealer,
  snpDerivedKeyRequest,
  STATE_FILE,
  type CoordinatorState,
} from '../../src/coordinator/index.js'
import { rejected } from '../support.js'
import { manifestText, removeState } from './harness.js'

const dirs: string[] = []
afterEach(async () => {
  for (const d of dirs.splice(0)) await removeState(d)
})

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'pmco-seal-'))
  dirs.push(d)
  return d
}

async function state(): Promise<CoordinatorState> {
  return {
    ca: await CoordinatorCa.create({ curve: 'P-256', now: Date.UTC(2026, 5, 1), leafLifetimeMs: 60_000 }),
    manifest: parseManifest(manifestText()),
    manifestGeneration: 3,
    updateKeyPem: undefined,
  }
}

async function keyFile(dir: string, key = randomBytes(32)): Promise<string> {
  const p = join(dir, 'state.key')
  await writeFile(p, key.toString('hex'), { mode: 0o600 })
  return p
}

describe('sealed coordinator state', () => {
  it('holds no private key and no manifest in the clear, and reads back', async () => {
    const dir = await tmp()
    const sealer = await keyFileSealer(await keyFile(await tmp()))
    const s = await state()
    await saveState(dir, s, sealer)
    const bytes = await readFile(join(dir, STATE_FILE), 'utf8')
    expect(bytes).not.toContain('PRIVATE KEY')
    expect(bytes).not.toContain('a.mesh.test')
    expect((await stat(join(dir, STATE_FILE))).mode & 0o777).toBe(0o600)
    const back = await loadState(dir, sealer)
    expect(back?.ca.root.certificatePem).toBe(s.ca.root.certificatePem)
    expect(back?.manifest.hash).toBe(s.manifest.hash)
    expect(back?.manifestGeneration).toBe(3)
    expect(Buffer.from(back!.ca.workloadSecret('x')).equals(Buffer.from(s.ca.workloadSecret('x')))).toBe(true)
  })

  it('a changed byte anywhere, another key, or another sealer is refused as COORDINATOR_STATE_INVALID naming the file', async () => {
    const dir = await tmp()
    const keys = await tmp()
    const sealer = await keyFileSealer(await keyFile(keys))
    await saveState(dir, await state(), sealer)
    const path = join(dir, STATE_FILE)
    const good = await readFile(path, 'utf8')
    const envelope = JSON.parse(good) as Record<string, string>
    const flipB64 = (b64: string): string => {
      const b = Buffer.from(b64, 'base64')
      const i = b.length >> 1
      b[i] = b[i]! ^ 1
      return b.toString('base64')
    }
    const tampered = [
      { ...envelope, ciphertext: flipB64(envelope['ciphertext']!) },
      { ...envelope, tag: flipB64(envelope['tag']!) },
      { ...envelope, iv: flipB64(envelope['iv']!) },
      { ...envelope, sealer: 'simulated' },
    ]
    for (const doc of tampered) {
      await writeFile(path, JSON.stringify(doc))
      const err = await rejected(loadState(dir, sealer))
      expect(err).toMatchObject({ code: 'COORDINATOR_STATE_INVALID', details: { path } })
    }
    await writeFile(path, good)
    const other = await keyFileSealer(await keyFile(await tmp()))
    expect(await rejected(loadState(dir, other))).toMatchObject({ code: 'COORDINATOR_STATE_INVALID' })
    expect(await rejected(loadState(dir, await simulatedSealer(await tmp())))).toMatchObject({ code: 'COORDINATOR_STATE_INVALID' })
    expect((await loadState(dir, sealer))?.manifestGeneration).toBe(3)
  })

  it('a sealer that cannot give its key is reported as that, not as a changed file', async () => {
    const dir = await tmp()
    const sealer = await keyFileSealer(await keyFile(await tmp()))
    await saveState(dir, await state(), sealer)
    const unavailable = new CoordinatorError('COORDINATOR_SEALING_KEY_UNAVAILABLE', 'no key today', { device: 'test' })
    const broken = { kind: sealer.kind, params: sealer.params, key: () => Promise.reject(unavailable) }
    expect(await rejected(loadState(dir, broken))).toBe(unavailable)
  })

  it('a plaintext state file of an earlier version is read once and replaced by the sealed one', async () => {
    const dir = await tmp()
    const s = await state()
    const records = await s.ca.toRecords()
    const legacy = { version: 1, curve: 'P-256', ...records, manifest: s.manifest.text }
    await writeFile(join(dir, 'coordinator-state.json'), JSON.stringify(legacy), { mode: 0o600 })
    const sealer = await simulatedSealer(dir)
    const back = await loadState(dir, sealer)
    expect(back?.ca.root.certificatePem).toBe(s.ca.root.certificatePem)
    expect(back?.manifestGeneration).toBe(0)
    await saveState(dir, back!, sealer)
    expect((await readdir(dir)).sort()).toEqual([STATE_FILE, 'state-key.SIMULATED-NOT-SECRET'].sort())
  })

  it('the simulated sealer keeps its key next to the state, under a name that says so', async () => {
    const dir = await tmp()
    const a = await simulatedSealer(dir)
    const b = await simulatedSealer(dir)
    expect(a.kind).toBe('simulated')
    expect(Buffer.from(await a.key()).equals(Buffer.from(await b.key()))).toBe(true)
    expect((await stat(join(dir, 'state-key.SIMULATED-NOT-SECRET'))).mode & 0o777).toBe(0o600)
  })

  it('a key file must hold 32 bytes (raw or hex)', async () => {
    const dir = await tmp()
    await writeFile(join(dir, 'short'), 'abcd')
    expect(await rejected(keyFileSealer(join(dir, 'short')))).toMatchObject({ code: 'COORDINATOR_STATE_INVALID', details: { path: join(dir, 'short') } })
    await writeFile(join(dir, 'raw'), randomBytes(32))
    expect((await (await keyFileSealer(join(dir, 'raw'))).key()).byteLength).toBe(32)
  })
})

describe('SNP derived key (MSG_KEY_REQ through /dev/sev-guest)', () => {
  it('requests a VCEK-rooted key over guest policy and measurement at VMPL 0', () => {
    const req = snpDerivedKeyRequest({ vmpl: 0 })
    expect(req.byteLength).toBe(32)
    expect(req.readUInt32LE(0)).toBe(0) // root key: VCEK
    expect(req.readBigUInt64LE(8)).toBe(0b1001n) // GUEST_POLICY | MEASUREMENT
    expect(req.readUInt32LE(16)).toBe(0) // VMPL
  })

  it('a device that is not sev-guest gives a typed error, not a key', async () => {
    const dir = await tmp()
    await writeFile(join(dir, 'not-a-device'), '')
    const sealer = snpDerivedKeySealer({ device: join(dir, 'not-a-device') })
    expect(await rejected(sealer.key())).toMatchObject({ code: 'COORDINATOR_SEALING_KEY_UNAVAILABLE', details: { device: join(dir, 'not-a-device'), errno: 'ENOTTY' } })
  })
})

describe('chooseSealer', () => {
  it('a key file wins; simulated evidence gets the simulated sealer; without /dev/sev-guest anything else is refused', async () => {
    const dir = await tmp()
    const absent = join(dir, 'no-sev-guest')
    expect((await chooseSealer({ stateDir: dir, stateKeyPath: await keyFile(await tmp()), evidence: 'configfs-tsm', device: absent })).kind).toBe('key-file')
    expect((await chooseSealer({ stateDir: dir, evidence: 'simulated', device: absent })).kind).toBe('simulated')
    expect(await rejected(chooseSealer({ stateDir: dir, evidence: 'attestation-agent', device: absent }))).toMatchObject({
      code: 'COORDINATOR_SEALING_KEY_UNAVAILABLE',
      details: { device: absent },
    })
    await writeFile(absent, '')
    expect((await chooseSealer({ stateDir: dir, evidence: 'configfs-tsm', device: absent })).kind).toBe('snp-derived-key')
  })
})
