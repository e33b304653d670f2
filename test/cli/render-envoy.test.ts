import { describe, it, expect, afterEach } from 'vitest'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { main } from '../../src/cli.js'
import { SDS_FILES } from '../../src/dataplane/envoy/bootstrap.js'
import { validateMessage } from '../dataplane/envoy/schema.js'

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (c) => (out += c))
  stderr.on('data', (c) => (err += c))
  const code = await main(argv, { stdout, stderr, env })
  return { code, out, err }
}

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

describe('podvm-mesh render envoy', () => {
  it('prints a valid bootstrap for config flags', async () => {
    const r = await run(['render', 'envoy', '--ingress', 'probe#8443#false', '--egress', 'web#127.137.0.3:8081#web-svc:443'])
    expect(r.code).toBe(0)
    const b = JSON.parse(r.out)
    expect(validateMessage('envoy.config.bootstrap.v3.Bootstrap', b)).toEqual([])
    expect(b.static_resources.listeners.map((l: any) => l.name)).toEqual(['ingress', 'ingress-no-client-auth', 'egress_web_127.137.0.3_8081'])
    expect(b.admin.address.socket_address).toEqual({ address: '127.0.0.1', port_value: 15000 })
  })

  it('takes the config from the environment like `check`', async () => {
    const r = await run(['render', 'envoy'], { CONTRAST_INGRESS_PROXY_CONFIG: 'DISABLED', CONTRAST_EGRESS_PROXY_CONFIG: 'db#127.0.0.9:5432#10.0.0.7:5432' })
    expect(r.code).toBe(0)
    expect(JSON.parse(r.out).static_resources.listeners.map((l: any) => l.name)).toEqual(['egress_db_127.0.0.9_5432'])
  })

  it('--sds-dir with --tls-dir writes the SDS files from a Contrast tls-config directory', async () => {
    const tls = join(import.meta.dirname, '..', 'dataplane', 'envoy', 'vectors', 'gen1')
    const sds = mkdtempSync(join(tmpdir(), 'render-sds-'))
    dirs.push(sds)
    const r = await run(['render', 'envoy', '--ingress', 'DISABLED', '--egress', 'w#127.0.0.2:80#w:443', '--sds-dir', sds, '--tls-dir', tls, '--envoy-admin-port', '19000'])
    expect(r.code).toBe(0)
    const b = JSON.parse(r.out)
    expect(b.admin.address.socket_address.port_value).toBe(19000)
    expect(JSON.stringify(b)).toContain(join(sds, SDS_FILES.certificate))
    expect(readdirSync(sds).sort()).toEqual([SDS_FILES.validation, SDS_FILES.certificate].sort())
    const cert = JSON.parse(readFileSync(join(sds, SDS_FILES.certificate), 'utf8'))
    expect(validateMessage('envoy.service.discovery.v3.DiscoveryResponse', cert)).toEqual([])
    expect(cert.resources[0].tls_certificate.private_key.inline_string).toBe(readFileSync(join(tls, 'key.pem'), 'utf8'))
  })

  it.each([
    [['--tls-dir', '/x'], /--tls-dir needs --sds-dir/],
    [['--sds-dir', 'relative'], /ENVOY_OPTION/],
    [['--envoy-admin-port', 'abc'], /not a number/],
    [['--envoy-admin-port', '15006'], /ENVOY_OPTION/],
  ])('rejects %j with exit 2', async (extra, msg) => {
    const r = await run(['render', 'envoy', '--ingress', 'a#80#false', ...extra])
    expect(r.code).toBe(2)
    expect(r.err).toMatch(msg)
    expect(r.out).toBe('')
  })

  it('reports config problems like `check` (exit 2)', async () => {
    const r = await run(['render', 'envoy', '--egress', 'web#10.0.0.1:80#web:443'])
    expect(r.code).toBe(2)
    expect(r.err).toMatch(/LISTEN_NOT_LOCAL/)
  })

  it('--help prints usage', async () => {
    const r = await run(['render', 'envoy', '--help'])
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/--sds-dir/)
  })
})
