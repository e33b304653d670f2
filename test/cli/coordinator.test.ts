import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { coordinatorCommand, parseDuration } from '../../src/cli/coordinator.js'
import { loadState, simulatedSealer, STATE_FILE } from '../../src/coordinator/index.js'
import { thrown } from '../support.js'
import { manifestText, startTestCoordinator, removeState, type TestCoordinator } from '../coordinator/harness.js'
import { parseManifest } from '../../src/coordinator/index.js'

function io() {
  const out = new PassThrough()
  const err = new PassThrough()
  let stdout = ''
  let stderr = ''
  out.on('data', (d: Buffer) => (stdout += d.toString()))
  err.on('data', (d: Buffer) => (stderr += d.toString()))
  return { io: { stdout: out, stderr: err, env: {} }, text: () => ({ stdout, stderr }) }
}

describe('parseDuration', () => {
  it.each([
    ['24h', 86_400_000],
    ['90s', 90_000],
    ['2m', 120_000],
    ['1500ms', 1_500],
    ['250', 250],
    ['1.5s', 1_500],
  ])('%s = %i ms', (text, ms) => {
    expect(parseDuration(text, 'leaf-lifetime')).toBe(ms)
  })
  it.each(['', '0', '-1s', '1d', 'h'])('refuses %j', (text) => {
    expect(thrown(() => parseDuration(text, 'leaf-lifetime'))).toMatchObject({ code: 'COORDINATOR_BAD_REQUEST', details: { field: 'leaf-lifetime' } })
  })
})

describe('podvm-mesh coordinator', () => {
  it('--help prints usage', async () => {
    const t = io()
    expect(await coordinatorCommand(['--help'], t.io)).toBe(0)
    expect(t.text().stdout).toContain('--leaf-lifetime')
  })
  it('an unknown flag is exit 2', async () => {
    const t = io()
    expect(await coordinatorCommand(['--nope'], t.io)).toBe(2)
  })
  it('no state and no manifest is exit 2 (nothing created)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pmco-cmd-'))
    const t = io()
    expect(await coordinatorCommand(['--state', join(dir, 's'), '--evidence', 'simulated', '--log-level', 'silent'], t.io)).toBe(2)
    await expect(stat(join(dir, 's', STATE_FILE))).rejects.toMatchObject({ code: 'ENOENT' })
    await rm(dir, { recursive: true, force: true })
  })
  it('--evidence auto on a machine without a TEE is exit 2, never a silent simulation', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pmco-cmd-'))
    await writeFile(join(dir, 'm.json'), manifestText())
    const t = io()
    expect(await coordinatorCommand(['--state', join(dir, 's'), '--manifest', join(dir, 'm.json'), '--log-level', 'silent'], t.io)).toBe(2)
    await rm(dir, { recursive: true, force: true })
  })
})

describe('podvm-mesh coordinator set-manifest', () => {
  let coord: TestCoordinator
  let dir: string
  const kp = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  beforeAll(async () => {
    coord = await startTestCoordinator({ updateKeyPem: kp.publicKey.export({ type: 'spki', format: 'pem' }).toString() })
    dir = await mkdtemp(join(tmpdir(), 'pmco-set-'))
    await writeFile(join(dir, 'current.json'), manifestText())
    await writeFile(join(dir, 'next.json'), manifestText({}, { ['ab'.repeat(32)]: { sans: ['n.mesh.test'] } }))
    await writeFile(join(dir, 'key.pem'), kp.privateKey.export({ type: 'pkcs8', format: 'pem' }))
    await writeFile(join(dir, 'other.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }))
  })
  afterAll(async () => {
    await coord.close()
    await removeState(coord.stateDir)
    await rm(dir, { recursive: true, force: true })
  })
  const args = (key: string) => ['set-manifest', '--coordinator', coord.address, '--manifest', join(dir, 'next.json'), '--current', join(dir, 'current.json'), '--generation', '0', '--signing-key', join(dir, key)]

  it('missing flags, or a generation that is not a number, are exit 2', async () => {
    expect(await coordinatorCommand(['set-manifest', '--coordinator', coord.address], io().io)).toBe(2)
    const bad = args('key.pem').map((a) => (a === '0' ? 'one' : a))
    expect(await coordinatorCommand(bad, io().io)).toBe(2)
  })
  it('a key that is not the update key is refused (exit 1), and nothing rotates', async () => {
    const t = io()
    expect(await coordinatorCommand(args('other.pem'), t.io)).toBe(1)
    expect(t.text().stderr).toContain('COORDINATOR_REFUSED')
    expect(coord.running.state.ca.generations).toHaveLength(1)
  })
  it('a signed update rotates, prints the new hash and is persisted', async () => {
    const t = io()
    expect(await coordinatorCommand(args('key.pem'), t.io)).toBe(0)
    const next = parseManifest(await readFile(join(dir, 'next.json'), 'utf8'))
    expect(JSON.parse(t.text().stdout)).toEqual({ manifestHash: next.hash, generation: 1 })
    expect(coord.running.state.ca.generations).toHaveLength(2)
    const persisted = (await loadState(coord.stateDir, await simulatedSealer(coord.stateDir)))!
    expect(persisted.manifest.text).toBe(next.text)
    expect(persisted.manifestGeneration).toBe(1)
    expect((await stat(join(coord.stateDir, STATE_FILE))).mode & 0o777).toBe(0o600)
    // Replaying the same signed request now fails: it is bound to the manifest it replaced.
    expect(await coordinatorCommand(args('key.pem'), io().io)).toBe(1)
  })
})
