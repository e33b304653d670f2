import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { applyRuleset, execRunner, netnsRunner, removeAll, type Runner, type RunOptions, type RunResult } from '../../src/netfilter/apply.js'
import type { Ruleset } from '../../src/netfilter/render.js'
import { logSink, rejected } from '../support.js'

interface Call {
  readonly cmd: string
  readonly args: readonly string[]
  readonly input?: string
}

/** Records every call; `answer` decides each result (default: success, no output). */
function recorder(answer: (c: Call) => Partial<RunResult> | Error = () => ({})): Runner & { calls: Call[] } {
  const calls: Call[] = []
  return {
    calls,
    async run(cmd: string, args: readonly string[], opts?: RunOptions) {
      const call: Call = { cmd, args, ...(opts?.input !== undefined ? { input: opts.input } : {}) }
      calls.push(call)
      const a = answer(call)
      if (a instanceof Error) throw a
      return { code: 0, stdout: '', stderr: '', ...a }
    },
  }
}

const line = (c: Call): string => [c.cmd, ...c.args].join(' ')
const RULESET: Ruleset = {
  nft: 'add table inet podvm_mesh\ndelete table inet podvm_mesh\ntable inet podvm_mesh {\n}\n',
  routes: [
    ['-4', 'rule', 'add', 'fwmark', '0x50e', 'lookup', '150'],
    ['-4', 'route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', '150'],
  ],
}
const RULES_NONE = '[{"priority":0,"src":"all","table":"local"},{"priority":32766,"src":"all","table":"main"}]'
const RULES_OURS =
  '[{"priority":0,"src":"all","table":"local"},{"priority":32765,"src":"all","fwmark":"0x50e","table":"150"},{"priority":32766,"src":"all","table":"main"}]'

function quietLog(): { log: pino.Logger; records: Record<string, unknown>[] } {
  const sink = logSink()
  return { log: pino({ level: 'debug' }, sink), records: sink.records }
}

describe('applyRuleset', () => {
  it('adds a missing ip rule, replaces the route, then runs ONE nft -f - with the script on stdin', async () => {
    const r = recorder((c) => (c.args.includes('show') ? { stdout: RULES_NONE } : {}))
    const { log, records } = quietLog()
    await applyRuleset(RULESET, r, log)
    expect(r.calls.map(line)).toEqual([
      'ip -4 -j rule show',
      'ip -4 rule add fwmark 0x50e lookup 150',
      'ip -4 route replace local 0.0.0.0/0 dev lo table 150',
      'nft -f -',
    ])
    expect(r.calls[3]!.input).toBe(RULESET.nft)
    expect(records.find((x) => x.msg === 'ruleset applied')).toMatchObject({ component: 'netfilter', routes: 2 })
  })

  it('does not add an ip rule that already exists', async () => {
    const r = recorder((c) => (c.args.includes('show') ? { stdout: RULES_OURS } : {}))
    await applyRuleset(RULESET, r, quietLog().log)
    expect(r.calls.map(line)).not.toContain('ip -4 rule add fwmark 0x50e lookup 150')
    expect(r.calls.filter((c) => c.cmd === 'nft')).toHaveLength(1)
  })

  it('a rule with the same mark but another table or a mask is not ours', async () => {
    const other = '[{"priority":10,"src":"all","fwmark":"0x50e","table":"151"},{"priority":11,"src":"all","fwmark":"0x50e","fwmask":"0xff","table":"150"}]'
    const r = recorder((c) => (c.args.includes('show') ? { stdout: other } : {}))
    await applyRuleset(RULESET, r, quietLog().log)
    expect(r.calls.map(line)).toContain('ip -4 rule add fwmark 0x50e lookup 150')
  })

  it('nft rejecting the script is NETFILTER_APPLY_FAILED with nft stderr', async () => {
    const stderr = '/dev/stdin:3:1-5: Error: syntax error, unexpected junk\n'
    const r = recorder((c) => (c.cmd === 'nft' ? { code: 1, stderr } : { stdout: RULES_OURS }))
    const err = await rejected(applyRuleset(RULESET, r, quietLog().log))
    expect(err).toMatchObject({ code: 'NETFILTER_APPLY_FAILED', details: { exitCode: 1, stderr } })
  })

  it('nft that cannot be started is NETFILTER_APPLY_FAILED with the cause', async () => {
    const enoent = Object.assign(new Error('spawn nft ENOENT'), { code: 'ENOENT' })
    const r = recorder((c) => (c.cmd === 'nft' ? enoent : { stdout: RULES_OURS }))
    const err = await rejected(applyRuleset(RULESET, r, quietLog().log))
    expect(err).toMatchObject({ code: 'NETFILTER_APPLY_FAILED', details: { command: 'nft -f -' } })
    expect(err.cause).toBe(enoent)
  })

  it('a failing route stops before nft: NETFILTER_ROUTE_FAILED naming the command', async () => {
    const r = recorder((c) => (c.args.includes('replace') ? { code: 2, stderr: 'Error: Device for nexthop is not up.\n' } : { stdout: RULES_OURS }))
    const err = await rejected(applyRuleset(RULESET, r, quietLog().log))
    expect(err).toMatchObject({
      code: 'NETFILTER_ROUTE_FAILED',
      details: { command: 'ip -4 route replace local 0.0.0.0/0 dev lo table 150', exitCode: 2 },
    })
    expect(r.calls.some((c) => c.cmd === 'nft')).toBe(false)
  })

  it('unparsable `ip -j rule show` output is NETFILTER_ROUTE_FAILED, not a SyntaxError', async () => {
    const r = recorder((c) => (c.args.includes('show') ? { stdout: '0: from all lookup local' } : {}))
    const err = await rejected(applyRuleset(RULESET, r, quietLog().log))
    expect(err).toMatchObject({ code: 'NETFILTER_ROUTE_FAILED' })
  })
})

describe('removeAll', () => {
  it('deletes the table first (idempotent script), then each ip rule until none is left, then flushes table 150', async () => {
    let dels = 0
    const r = recorder((c) => {
      if (c.args.includes('del') && c.args[0] === '-4') return ++dels <= 2 ? {} : { code: 2, stderr: 'RTNETLINK answers: No such file or directory\n' }
      if (c.args.includes('del')) return { code: 2, stderr: 'RTNETLINK answers: No such file or directory\n' }
      return {}
    })
    await removeAll(r)
    expect(r.calls.map(line)).toEqual([
      'nft -f -',
      'ip -4 rule del fwmark 0x50e lookup 150',
      'ip -4 rule del fwmark 0x50e lookup 150',
      'ip -4 rule del fwmark 0x50e lookup 150',
      'ip -4 route flush table 150',
      'ip -6 rule del fwmark 0x50e lookup 150',
      'ip -6 route flush table 150',
    ])
    expect(r.calls[0]!.input).toBe('# podvm-mesh teardown (generated)\nadd table inet podvm_mesh\ndelete table inet podvm_mesh\n')
  })

  it('an unexpected failure is NETFILTER_REMOVE_FAILED', async () => {
    const r = recorder((c) => (c.args.includes('del') ? { code: 2, stderr: 'RTNETLINK answers: Operation not permitted\n' } : {}))
    const err = await rejected(removeAll(r))
    expect(err).toMatchObject({ code: 'NETFILTER_REMOVE_FAILED', details: { command: 'ip -4 rule del fwmark 0x50e lookup 150', exitCode: 2 } })
  })

  it('a rule that never goes away is bounded, not an endless loop', async () => {
    const r = recorder(() => ({}))
    await removeAll(r)
    expect(r.calls.filter((c) => line(c) === 'ip -4 rule del fwmark 0x50e lookup 150')).toHaveLength(32)
  })
})

describe('netnsRunner', () => {
  it('prefixes ip netns exec NAME and passes stdin through', async () => {
    const base = recorder()
    await netnsRunner('pmnf-b', base).run('nft', ['-f', '-'], { input: 'x' })
    expect(base.calls).toEqual([{ cmd: 'ip', args: ['netns', 'exec', 'pmnf-b', 'nft', '-f', '-'], input: 'x' }])
  })
})

describe('execRunner', () => {
  it('feeds stdin and reports exit code, stdout and stderr', async () => {
    const r = await execRunner.run(process.execPath, ['-e', 'process.stdin.pipe(process.stdout); process.stderr.write("e"); process.exitCode = 3'], { input: 'abc' })
    expect(r).toEqual({ code: 3, stdout: 'abc', stderr: 'e' })
  })
  it('rejects when the program cannot be started', async () => {
    const err = await rejected(execRunner.run('/nonexistent/podvm-mesh-nft', []))
    expect(err).toMatchObject({ code: 'ENOENT' })
  })
})
