// Envoy itself checks what the renderer produces: every golden bootstrap goes through
// `envoy --mode validate`, which parses it, resolves every extension and loads the SDS
// files, without binding anything. The schema validator (schema.test.ts) checks the
// same files against the protos; this is the check that Envoy agrees. Under CI=true a
// missing Envoy fails here (envoyForTests).

import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { readTlsDir } from '../../../src/pki/index.js'
import { writeSdsResources } from '../../../src/dataplane/envoy/sds.js'
import { envoyForTests } from '../../envoy-support.js'

const ENVOY = envoyForTests()
const GOLDEN_DIR = join(import.meta.dirname, 'golden')
/** The SDS directory the bootstrap goldens are rendered with (bootstrap.test.ts OPTS). */
const GOLDEN_SDS_DIR = '/run/podvm-mesh/sds'
// sds-*.json are SDS resources, not bootstraps; every other golden is a bootstrap.
const BOOTSTRAPS = readdirSync(GOLDEN_DIR).filter((f) => f.endsWith('.json') && !f.startsWith('sds-'))

describe.skipIf(ENVOY.skip !== undefined)(`envoy --mode validate over every golden bootstrap${ENVOY.skip ? ` (skipped: ${ENVOY.skip})` : ''}`, () => {
  let dir: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'envoy-validate-'))
    writeSdsResources(join(dir, 'sds'), (await readTlsDir(join(import.meta.dirname, 'vectors', 'gen1'))).material)
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('finds the goldens', () => {
    expect(BOOTSTRAPS.length).toBeGreaterThanOrEqual(6)
  })

  it.each(BOOTSTRAPS)('%s', async (file) => {
    const text = readFileSync(join(GOLDEN_DIR, file), 'utf8')
    expect(text).toContain(GOLDEN_SDS_DIR)
    // Same bootstrap, SDS paths pointed at real secret files.
    const path = join(dir, file)
    writeFileSync(path, text.replaceAll(GOLDEN_SDS_DIR, join(dir, 'sds')))
    const { stdout } = await promisify(execFile)(ENVOY.path!, ['--mode', 'validate', '-c', path, '--disable-hot-restart'], { timeout: 60_000 })
    expect(stdout).toMatch(/configuration .* OK/)
  })

  it('refuses a broken bootstrap (the check can fail)', async () => {
    const path = join(dir, 'broken.json')
    const golden = JSON.parse(readFileSync(join(GOLDEN_DIR, 'default.json'), 'utf8').replaceAll(GOLDEN_SDS_DIR, join(dir, 'sds')))
    golden.static_resources.clusters[0].type = 'NOT_A_TYPE'
    writeFileSync(path, JSON.stringify(golden))
    const err = await promisify(execFile)(ENVOY.path!, ['--mode', 'validate', '-c', path, '--disable-hot-restart'], { timeout: 60_000 }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeDefined()
  })
})
