import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chooseDataPlane, findEnvoy, pendingLimitsFromArgs, positiveIntegerFlag } from '../../src/agent/dataplane-select.js'
import { thrown } from '../support.js'

describe('chooseDataPlane', () => {
  let withEnvoy: string
  let without: string
  beforeAll(async () => {
    withEnvoy = await mkdtemp(join(tmpdir(), 'pm-envoy-'))
    without = await mkdtemp(join(tmpdir(), 'pm-noenvoy-'))
    await writeFile(join(withEnvoy, 'envoy'), '#!/bin/sh\n')
    await chmod(join(withEnvoy, 'envoy'), 0o755)
    // Present but not executable: must not count.
    await writeFile(join(without, 'envoy'), '#!/bin/sh\n')
  })
  afterAll(async () => {
    await rm(withEnvoy, { recursive: true, force: true })
    await rm(without, { recursive: true, force: true })
  })

  it('auto picks Envoy when an executable is on PATH, and says where', () => {
    expect(chooseDataPlane('auto', { PATH: `${without}:${withEnvoy}` })).toEqual({
      kind: 'envoy',
      reason: `found ${join(withEnvoy, 'envoy')}`,
      envoyPath: join(withEnvoy, 'envoy'),
    })
  })

  it('auto falls back to builtin when no executable Envoy exists', () => {
    expect(chooseDataPlane('auto', { PATH: without })).toEqual({ kind: 'builtin', reason: 'no envoy executable found' })
  })

  it('ENVOY_BIN and --envoy-bin name the executable', () => {
    expect(findEnvoy({ PATH: '', ENVOY_BIN: join(withEnvoy, 'envoy') })).toBe(join(withEnvoy, 'envoy'))
    expect(findEnvoy({ PATH: '' }, join(without, 'envoy'))).toBeUndefined()
  })

  it('builtin is taken as asked, even with Envoy present', () => {
    expect(chooseDataPlane('builtin', { PATH: withEnvoy }).kind).toBe('builtin')
  })

  it('envoy without an executable is an error, not a silent fallback', () => {
    expect(thrown(() => chooseDataPlane('envoy', { PATH: without }))).toMatchObject({ code: 'AGENT_BAD_ARGS' })
  })

  it('rejects an unknown kind', () => {
    expect(thrown(() => chooseDataPlane('nginx', {}))).toMatchObject({ code: 'AGENT_BAD_ARGS', details: { kind: 'nginx' } })
  })
})

describe('pendingLimitsFromArgs', () => {
  it('maps --max-pending and --max-pending-per-source; unset flags keep the defaults', () => {
    expect(pendingLimitsFromArgs({})).toEqual({})
    expect(pendingLimitsFromArgs({ 'max-pending': '256', 'max-pending-per-source': '16' })).toEqual({ pendingPerListener: 256, pendingPerSource: 16 })
  })

  it.each(['0', '-1', '1.5', '1e3', 'many', ''])('rejects %j, naming the flag', (bad) => {
    expect(thrown(() => pendingLimitsFromArgs({ 'max-pending-per-source': bad }))).toMatchObject({
      code: 'AGENT_BAD_ARGS',
      details: { field: 'max-pending-per-source', value: bad },
    })
  })
})

describe('positiveIntegerFlag (--envoy-concurrency and the pending limits)', () => {
  it('absent is undefined; a positive integer is its number; anything else names the flag', () => {
    expect(positiveIntegerFlag('envoy-concurrency', undefined)).toBeUndefined()
    expect(positiveIntegerFlag('envoy-concurrency', '2')).toBe(2)
    expect(thrown(() => positiveIntegerFlag('envoy-concurrency', '0'))).toMatchObject({
      code: 'AGENT_BAD_ARGS',
      details: { field: 'envoy-concurrency', value: '0' },
    })
  })
})
