import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, it, expect } from 'vitest'
import { configFromArgs, meshConfigFromEnv, type ConfigIssue } from '../../src/config/index.js'
import { thrown } from '../support.js'

const ENV = { CONTRAST_INGRESS_PROXY_CONFIG: 'DISABLED' }

function issues(fn: () => unknown, code = 'CONFIG_INVALID'): Pick<ConfigIssue, 'source' | 'reason' | 'entry'>[] {
  const err = thrown(fn)
  expect(err.code).toBe(code)
  return (err.details.issues as ConfigIssue[]).map(({ source, reason, entry }) => ({ source, reason, entry }))
}

describe('configFromArgs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podvm-mesh-args-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('with no config flags reads env', () => {
    const r = configFromArgs([], ENV)
    expect(r.from).toBe('env')
    expect(r.config.ingress.enabled).toBe(false)
  })

  it('flags replace env entirely', () => {
    const r = configFromArgs(
      ['--ingress', 'web#8443#false', '--egress=a#127.0.0.2:80#svc:80', '--admin-port', '9901'],
      { ...ENV, CONTRAST_EGRESS_PROXY_CONFIG: 'this is not read' },
    )
    expect(r.from).toBe('flags')
    expect(r.config).toEqual(
      meshConfigFromEnv({
        CONTRAST_INGRESS_PROXY_CONFIG: 'web#8443#false',
        CONTRAST_EGRESS_PROXY_CONFIG: 'a#127.0.0.2:80#svc:80',
        CONTRAST_ADMIN_PORT: '9901',
      }),
    )
  })

  it('--transparent-egress and repeated --allow-plaintext', () => {
    const r = configFromArgs(['--transparent-egress', '--allow-plaintext', '10.0.0.0/8', '--allow-plaintext', '[fd00::/64]:443,192.0.2.1'], {})
    expect(r.config.transparentEgress).toEqual({
      enabled: true,
      allowPlaintext: [
        { cidr: '10.0.0.0/8', family: 4 },
        { cidr: '192.0.2.1/32', family: 4 },
        { cidr: 'fd00::/64', family: 6, port: 443 },
      ],
    })
  })

  it('flag problems name the flag', () => {
    expect(issues(() => configFromArgs(['--allow-plaintext', '10.0.0.0/8'], {}))).toEqual([
      { source: '--allow-plaintext', reason: 'ALLOW_LIST_WITHOUT_OPT_IN', entry: undefined },
    ])
    expect(issues(() => configFromArgs(['--egress', '#127.0.0.1:80#b:80'], {}))).toEqual([{ source: '--egress', reason: 'INVALID_NAME', entry: '#127.0.0.1:80#b:80' }])
    expect(issues(() => configFromArgs(['--admin-port', '15006'], {}))).toEqual([
      { source: '--admin-port', reason: 'ADMIN_PORT_RESERVED', entry: '15006' },
    ])
  })

  it('--file reads the file', () => {
    const p = join(dir, 'm.toml')
    writeFileSync(p, '[ingress]\ndisabled = true\n')
    const r = configFromArgs(['--file', p], {})
    expect(r.from).toBe('file')
    expect(r.config.ingress.enabled).toBe(false)
  })

  it('config flags and --file are mutually exclusive, each flag named', () => {
    expect(issues(() => configFromArgs(['--file', 'x.toml', '--ingress', 'DISABLED', '--transparent-egress'], {}))).toEqual([
      { source: 'argv', reason: 'FLAGS_WITH_FILE', entry: '--ingress' },
      { source: 'argv', reason: 'FLAGS_WITH_FILE', entry: '--transparent-egress' },
    ])
  })

  it("returns a command's own options and positionals, typed", () => {
    const r = configFromArgs(['--out', 'x.nft', '--ingress', 'DISABLED', '--dry-run', 'pos'], {}, {
      options: { out: { type: 'string' }, 'dry-run': { type: 'boolean' } },
      allowPositionals: true,
    })
    const out: string | undefined = r.values.out
    const dry: boolean | undefined = r.values['dry-run']
    expect([out, dry]).toEqual(['x.nft', true])
    expect(r.values).toEqual({ out: 'x.nft', 'dry-run': true })
    expect(r.positionals).toEqual(['pos'])
    expect(r.config.ingress.enabled).toBe(false)
  })

  it('unknown options and unexpected positionals are INVALID_ARGUMENT', () => {
    expect(issues(() => configFromArgs(['--ingres', 'x'], {}))).toEqual([{ source: 'argv', reason: 'INVALID_ARGUMENT', entry: undefined }])
    expect(issues(() => configFromArgs(['stray'], {}))).toEqual([{ source: 'argv', reason: 'INVALID_ARGUMENT', entry: undefined }])
    expect(issues(() => configFromArgs(['--ingress'], {}))).toEqual([{ source: 'argv', reason: 'INVALID_ARGUMENT', entry: undefined }])
  })

  it('a command may not redefine a shared config option', () => {
    expect(issues(() => configFromArgs([], {}, { options: { file: { type: 'boolean' } } }), 'CONFIG_OPTION_CLASH')).toEqual([
      { source: 'options', reason: 'INVALID_ARGUMENT', entry: 'file' },
    ])
  })
})
