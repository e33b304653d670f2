import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, it, expect } from 'vitest'
import { main } from '../../src/cli.js'
import { checkCommand } from '../../src/cli/check.js'
import { meshConfigFromEnv } from '../../src/config/index.js'
import { capturedIo } from './io.js'

const fakeIo = (env: NodeJS.ProcessEnv = {}) => capturedIo({ env })

const EGRESS = 'emoji#127.137.0.1:8081#emoji-svc:8080##voting#127.137.0.2:8081#voting-svc:8080'

describe('podvm-mesh check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podvm-mesh-check-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('prints the normalized env config as JSON and exits 0', async () => {
    const io = fakeIo({ CONTRAST_EGRESS_PROXY_CONFIG: EGRESS, CONTRAST_INGRESS_PROXY_CONFIG: 'web#8443#false##db#5432#true' })
    expect(await checkCommand([], io)).toBe(0)
    expect(io.err()).toBe('')
    expect(JSON.parse(io.out())).toEqual(meshConfigFromEnv(io.env))
    expect(JSON.parse(io.out()).ingress.rules.map((r: { port: number }) => r.port)).toEqual([5432, 8443])
  })

  it('lists every problem on stderr, one line each with source, entry and reason, and exits 2', async () => {
    const io = fakeIo({ CONTRAST_INGRESS_PROXY_CONFIG: 'a#0#true##b#80#maybe', CONTRAST_ADMIN_PORT: '15001' })
    expect(await checkCommand([], io)).toBe(2)
    expect(io.out()).toBe('')
    const lines = io.err().trimEnd().split('\n')
    expect(lines).toHaveLength(4) // a header and three issues
    const issueLines = lines.slice(1)
    expect(issueLines.some((l) => l.startsWith('CONTRAST_INGRESS_PROXY_CONFIG [0] "a#0#true": PORT_OUT_OF_RANGE:'))).toBe(true)
    expect(issueLines.some((l) => l.startsWith('CONTRAST_INGRESS_PROXY_CONFIG [1] "b#80#maybe": INVALID_BOOLEAN:'))).toBe(true)
    expect(issueLines.some((l) => l.startsWith('CONTRAST_ADMIN_PORT "15001": ADMIN_PORT_RESERVED:'))).toBe(true)
  })

  it('checks flags and files too', async () => {
    const ok = fakeIo()
    expect(await checkCommand(['--ingress', 'DISABLED', '--egress', EGRESS], ok)).toBe(0)
    expect(JSON.parse(ok.out()).ingress).toEqual({ enabled: false, rules: [] })

    const p = join(dir, 'bad.toml')
    writeFileSync(p, '[admin]\nport = 0\nbind = "x"\n')
    const bad = fakeIo()
    expect(await checkCommand(['--file', p], bad)).toBe(2)
    expect(bad.err()).toContain(p)
    expect(bad.err()).toContain('file:admin.bind: UNKNOWN_KEY')
  })

  it('bad usage exits 2 with the reason', async () => {
    const io = fakeIo()
    expect(await checkCommand(['--nope'], io)).toBe(2)
    expect(io.err()).toContain('argv: INVALID_ARGUMENT')
  })

  it('is registered in the CLI as `check`', async () => {
    const io = fakeIo({ CONTRAST_INGRESS_PROXY_CONFIG: 'DISABLED' })
    expect(await main(['check'], io)).toBe(0)
    expect(JSON.parse(io.out()).ingress.enabled).toBe(false)
    const bad = fakeIo({ CONTRAST_EGRESS_PROXY_CONFIG: 'a#10.0.0.1:80#b:80' })
    expect(await main(['check'], bad)).toBe(2)
    expect(bad.err()).toContain('CONTRAST_EGRESS_PROXY_CONFIG [0] "a#10.0.0.1:80#b:80": LISTEN_NOT_LOCAL')
  })
})
