import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { measuredConfig } from '../../src/agent/measured-config.js'
import { encodeInitdataBlock, renderInitdataToml } from '../../src/config/index.js'
import { thrown } from '../support.js'

const IDENTITY = 'ab'.repeat(32)
const SECTION = `[coordinator]
address = "coordinator.mesh.test:7777"
identity = "${IDENTITY}"
measurements = ["${'ab'.repeat(48)}"]

[ingress]
[[ingress.ports]]
name = "web"
port = 8443
mode = "tls"
`

describe('run --initdata', () => {
  let dir: string
  let tomlPath: string
  let blockPath: string
  let toml: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pm-initdata-'))
    toml = renderInitdataToml('sha384', { 'podvm-mesh.toml': SECTION, 'policy.rego': 'package agent_policy\n' })
    tomlPath = join(dir, 'initdata.toml')
    blockPath = join(dir, 'initdata.img')
    await writeFile(tomlPath, toml)
    await writeFile(blockPath, encodeInitdataBlock(toml))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it.each([
    ['a TOML document', () => tomlPath],
    ['the block-device form', () => blockPath],
  ])('reads the config and the coordinator pin from %s, with the digest Kata computes', (_label, path) => {
    const m = measuredConfig({ from: 'env', values: { initdata: path() } })!
    expect(m.config.ingress.rules).toEqual([{ name: 'web', port: 8443, mode: 'tls' }])
    expect(m.digestHex).toBe(createHash('sha384').update(toml).digest('hex'))
    expect(m.attestedValues).toEqual({
      coordinator: 'coordinator.mesh.test:7777',
      'coordinator-identity': `policy:${IDENTITY}`,
      'coordinator-measurement': ['ab'.repeat(48)],
    })
  })

  it('without a TEE, the simulated HOST_DATA is the digest cut to 32 bytes', () => {
    const m = measuredConfig({ from: 'env', values: { initdata: tomlPath, evidence: 'simulated' } })!
    expect(m.attestedValues['simulated-hostdata']).toBe(m.digestHex.slice(0, 64))
  })

  it('is absent without --initdata', () => {
    expect(measuredConfig({ from: 'flags', values: {} })).toBeUndefined()
  })

  it.each([
    [{ from: 'flags' as const, values: { initdata: 'x.toml' } }, 'initdata'],
    [{ from: 'file' as const, values: { initdata: 'x.toml' } }, 'initdata'],
    [{ from: 'env' as const, values: { initdata: 'x.toml', coordinator: 'evil:7777' } }, 'coordinator'],
    [{ from: 'env' as const, values: { initdata: 'x.toml', 'coordinator-identity': 'policy:00' } }, 'coordinator-identity'],
    [{ from: 'env' as const, values: { initdata: 'x.toml', 'simulated-hostdata': '00' } }, 'simulated-hostdata'],
    [{ from: 'env' as const, values: { initdata: 'x.toml', 'coordinator-measurement': ['00'] } }, 'coordinator-measurement'],
  ])('refuses an unmeasured override next to the measured config (%#)', (parsed, field) => {
    expect(thrown(() => measuredConfig(parsed))).toMatchObject({ code: 'AGENT_BAD_ARGS', details: { field } })
  })

  it('names the problem of a bad mesh section', async () => {
    const bad = join(dir, 'bad.toml')
    await writeFile(bad, renderInitdataToml('sha256', { 'podvm-mesh.toml': SECTION.replace('8443', '0') }))
    const err = thrown(() => measuredConfig({ from: 'env', values: { initdata: bad } }))
    expect(err.code).toBe('CONFIG_INVALID')
    expect(err.details.issues[0]).toMatchObject({ reason: 'PORT_OUT_OF_RANGE' })
  })
})
