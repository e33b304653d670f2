import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { attestedSettings, coordinatorIdentityFlag, drainFlag, runCommand } from '../../src/cli/run.js'
import { thrown } from '../support.js'
import { HOST_A, HOST_COORDINATOR } from '../coordinator/harness.js'

describe('--coordinator-identity', () => {
  it.each(['', 'policy:abc', `root-ca:${'0f'.repeat(31)}`, `hostdata:${'ab'.repeat(32)}`, 'zz'.repeat(32)])('refuses %j', (text) => {
    expect(thrown(() => coordinatorIdentityFlag(text))).toMatchObject({ code: 'AGENT_BAD_ARGS', details: { field: 'coordinator-identity' } })
  })
})

describe('--drain', () => {
  it('reads a duration; without the flag, the default drain period', () => {
    expect(drainFlag('2s')).toBe(2_000)
    expect(drainFlag('1500ms')).toBe(1_500)
    expect(drainFlag(undefined)).toBe(5_000)
  })
  it.each(['', '0', '0ms', '-1s', '2 weeks', '1e3'])('refuses %j', (text) => {
    expect(thrown(() => drainFlag(text))).toMatchObject({ code: 'AGENT_BAD_ARGS', details: { field: 'drain', value: text } })
  })
})

describe('attestedSettings (run flags)', () => {
  it('is off without --coordinator', () => {
    expect(attestedSettings({})).toBeUndefined()
  })
  it.each([
    [{ evidence: 'simulated' }, 'evidence'],
    [{ coordinator: 'c:7777' }, 'coordinator-identity'],
    [{ coordinator: 'no-port', 'coordinator-identity': HOST_COORDINATOR }, 'coordinator'],
    [{ coordinator: 'c:7777', 'coordinator-identity': HOST_COORDINATOR, 'simulated-hostdata': HOST_A }, 'simulated-hostdata'],
    [{ coordinator: 'c:7777', 'coordinator-identity': HOST_COORDINATOR, 'coordinator-rtmr': [`4=${'11'.repeat(48)}`] }, 'coordinator-rtmr'],
    [{ 'coordinator-rtmr': [`1=${'11'.repeat(48)}`] }, 'coordinator-rtmr'],
  ])('refuses %j naming %s', (values, field) => {
    expect(thrown(() => attestedSettings(values))).toMatchObject({ code: 'AGENT_BAD_ARGS', details: { field } })
  })
})

describe('attestedSettings: TDX RTMR pins', () => {
  it('are read lower-cased as <index>=<hex>', () => {
    const r = `1=${'AB'.repeat(48)}`
    expect(attestedSettings({ coordinator: 'c:7777', 'coordinator-identity': HOST_COORDINATOR, 'coordinator-rtmr': [r] })?.rtmr).toEqual([r.toLowerCase()])
  })
})

describe('podvm-mesh run --coordinator', () => {
  it('refuses --coordinator without --coordinator-identity before applying anything (exit 2)', async () => {
    const err = new PassThrough()
    let stderr = ''
    err.on('data', (d: Buffer) => (stderr += d.toString()))
    const code = await runCommand(['--ingress', '', '--dataplane', 'builtin', '--log-level', 'silent', '--coordinator', '10.0.0.1:7777'], {
      stdout: new PassThrough(),
      stderr: err,
      env: {},
    })
    expect(code).toBe(2)
    expect(stderr).toContain('--coordinator-identity')
  })
})
