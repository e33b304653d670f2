// What a command loads when it starts, measured on the built code by
// bench/import-footprint.mjs in a fresh process: heavy modules a command does not use
// must stay out of it (item 6 of issue 11). Module lists, not RSS: lists are exact.

import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = join(import.meta.dirname, '..', '..')
const TOOL = join(ROOT, 'bench', 'import-footprint.mjs')

interface Footprint {
  readonly own: number
  readonly files: readonly string[]
}

function footprint(module: string, env: Record<string, string> = {}): Footprint {
  if (!existsSync(join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/ is missing: run npm run build first (npm test does)')
  const out = execFileSync(process.execPath, [TOOL, module], { cwd: ROOT, env: { ...process.env, ...env, IMPORT_FOOTPRINT_REPS: '1' }, encoding: 'utf8' })
  return JSON.parse(out) as Footprint
}

/** The npm packages among the loaded files. */
function packages(f: Footprint): string[] {
  const names = f.files.flatMap((p) => {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(p)
    return m === null ? [] : [m[1]!]
  })
  return [...new Set(names)].sort()
}

const own = (f: Footprint, prefix: string): string[] => f.files.filter((p) => p.startsWith(`dist/${prefix}`))

// The certificate builder and its metadata polyfill; gRPC and protobuf; the FFI.
const X509 = ['@peculiar/x509', 'reflect-metadata', 'tsyringe']
const GRPC = ['@grpc/grpc-js', 'protobufjs']

describe('what each command loads at start', () => {
  it('run: no certificate builder, no gRPC, no verifiers, no data plane until one is chosen', () => {
    const f = footprint('dist/cli/run.js')
    expect(packages(f).filter((p) => [...X509, ...GRPC, 'koffi'].includes(p))).toEqual([])
    expect(own(f, 'dataplane/builtin/')).toEqual([])
    expect(own(f, 'dataplane/envoy/')).toEqual([])
    expect(own(f, 'attestation/')).toEqual([])
    expect(own(f, 'meshapi/').filter((p) => p !== 'dist/meshapi/identity.js')).toEqual([])
    expect(own(f, 'pki/certificates')).toEqual([])
  })

  it.each([
    ['builtin', 'dataplane/builtin/', 'dataplane/envoy/'],
    ['envoy', 'dataplane/envoy/', 'dataplane/builtin/'],
  ])('run with the %s data plane loads it and not the other', (kind, chosen, other) => {
    const f = footprint('test/cli/fixtures/create-dataplane.mjs', { FOOTPRINT_DATAPLANE: kind })
    expect(own(f, chosen).length).toBeGreaterThan(0)
    expect(own(f, other)).toEqual([])
    expect(packages(f).includes('koffi')).toBe(kind === 'builtin') // IP_TRANSPARENT, SO_MARK
  })

  it('coordinator: no data plane, no netfilter, no FFI', () => {
    const f = footprint('dist/cli/coordinator.js')
    expect(own(f, 'dataplane/')).toEqual([])
    expect(own(f, 'netfilter/')).toEqual([])
    expect(own(f, 'agent/')).toEqual([])
    expect(packages(f)).not.toContain('koffi')
    expect(packages(f)).toEqual(expect.arrayContaining(['@grpc/grpc-js', '@peculiar/x509']))
  })

  it('hook: no npm package at start (it runs per container under kata-agent\'s sandbox lock); the FFI only for a workload container', () => {
    const f = footprint('dist/cli/hook.js')
    expect(packages(f)).toEqual([])
    expect(own(f, 'hook/container')).toEqual([])
    expect(f.files.filter((p) => p.startsWith('dist/') && !/^dist\/(hook\/|cli\/(command|hook)\.js|pki\/(store|mesh-status|atomic-file|errors)\.js|config\/errors\.js|errors\.js)/.test(p))).toEqual([])
  })

  it('check: the config component and its two parsers, nothing else', () => {
    const f = footprint('dist/cli/check.js')
    expect(packages(f)).toEqual(['smol-toml', 'zod'])
    expect(f.files.filter((p) => p.startsWith('dist/') && !/^dist\/(config\/|cli\/|errors\.js)/.test(p))).toEqual([])
  })
})
