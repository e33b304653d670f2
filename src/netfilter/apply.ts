// Applies a rendered Ruleset: routes first, then the nft script in ONE `nft -f -`
// (one kernel transaction: if nft rejects any line, the previous table stays as it
// was). Thin on purpose; everything that decides what the rules are lives in render.ts.
// Commands go through a Runner so tests can record them and netns tests can prefix
// `ip netns exec NAME`.

import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { NetfilterError } from './errors.js'
import { formatRouteCommand, renderTeardown, type RouteCommand, type Ruleset } from './render.js'

export interface RunResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  readonly input?: string
}

/** Runs one program. Resolves with its exit status; rejects only if it could not be started. */
export interface Runner {
  run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>
}

/** Runs commands as child processes of this one (no shell). */
export const execRunner: Runner = {
  run(cmd, args, opts) {
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
      const out: Buffer[] = []
      const err: Buffer[] = []
      child.stdout.on('data', (b: Buffer) => out.push(b))
      child.stderr.on('data', (b: Buffer) => err.push(b))
      child.on('error', reject)
      child.on('close', (code, signal) => {
        resolve({
          code: code ?? (signal !== null ? 128 : 1),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        })
      })
      // EPIPE if the child exits without reading: its exit status tells the story.
      child.stdin.on('error', () => {})
      child.stdin.end(opts?.input ?? '')
    })
  },
}

/** Runs every command inside the network namespace `name` (`ip netns exec name ...`). */
export function netnsRunner(name: string, base: Runner = execRunner): Runner {
  return { run: (cmd, args, opts) => base.run('ip', ['netns', 'exec', name, cmd, ...args], opts) }
}

/** Installs the routes (idempotently) and then the nft script (atomically). */
export async function applyRuleset(ruleset: Ruleset, runner: Runner, log: Logger): Promise<void> {
  const l = log.child({ component: 'netfilter' })
  for (const route of ruleset.routes) await applyRoute(route, runner, l)
  const r = await start(runner, 'nft', ['-f', '-'], { input: ruleset.nft }, 'NETFILTER_APPLY_FAILED')
  if (r.code !== 0) {
    throw new NetfilterError('NETFILTER_APPLY_FAILED', `nft -f rejected the ruleset (exit ${r.code}): ${firstLine(r.stderr)}`, {
      exitCode: r.code,
      stderr: r.stderr,
    })
  }
  l.info({ sha256: createHash('sha256').update(ruleset.nft).digest('hex'), routes: ruleset.routes.length }, 'ruleset applied')
  // MESH_TRACE=netfilter: the exact script, to compare with `podvm-mesh render nft`.
  if (l.isLevelEnabled('trace')) l.trace({ nft: ruleset.nft, routes: ruleset.routes }, 'ruleset applied: script')
}

// How many duplicates of our `ip rule` removeAll is prepared to delete.
const MAX_RULE_DELETES = 32

/**
 * Deletes the mesh table and its routes. Idempotent: what is already gone is not an
 * error. The table goes first so nothing is marked for a route that no longer exists.
 */
export async function removeAll(runner: Runner, log?: Logger): Promise<void> {
  const teardown = renderTeardown()
  const r = await start(runner, 'nft', ['-f', '-'], { input: teardown.nft }, 'NETFILTER_REMOVE_FAILED')
  if (r.code !== 0) {
    throw new NetfilterError('NETFILTER_REMOVE_FAILED', `nft could not delete the table (exit ${r.code}): ${firstLine(r.stderr)}`, {
      exitCode: r.code,
      stderr: r.stderr,
    })
  }
  for (const cmd of teardown.routes) {
    const isRuleDel = cmd[1] === 'rule' && cmd[2] === 'del'
    // `rule del` removes one copy per call: repeat until the kernel says there is none.
    for (let i = 0; i < (isRuleDel ? MAX_RULE_DELETES : 1); i++) {
      const d = await start(runner, 'ip', cmd, undefined, 'NETFILTER_REMOVE_FAILED')
      if (d.code === 0) continue
      if (isRuleDel && /No such file or directory|not found/i.test(d.stderr)) break
      throw new NetfilterError('NETFILTER_REMOVE_FAILED', `${formatRouteCommand(cmd)} failed (exit ${d.code}): ${firstLine(d.stderr)}`, {
        command: formatRouteCommand(cmd),
        exitCode: d.code,
        stderr: d.stderr,
      })
    }
  }
  log?.child({ component: 'netfilter' }).info('ruleset and routes removed')
}

async function applyRoute(cmd: RouteCommand, runner: Runner, log: Logger): Promise<void> {
  const rule = ruleSelector(cmd)
  // `ip rule add` appends a duplicate every time; deleting first would leave a moment in
  // which captured egress is routed out in plaintext. So: look, then add if missing.
  if (rule !== undefined && (await ruleExists(rule, runner))) {
    log.debug({ command: formatRouteCommand(cmd) }, 'ip rule already present')
    return
  }
  const r = await start(runner, 'ip', cmd, undefined, 'NETFILTER_ROUTE_FAILED')
  if (r.code !== 0) {
    throw new NetfilterError('NETFILTER_ROUTE_FAILED', `${formatRouteCommand(cmd)} failed (exit ${r.code}): ${firstLine(r.stderr)}`, {
      command: formatRouteCommand(cmd),
      exitCode: r.code,
      stderr: r.stderr,
    })
  }
  log.debug({ command: formatRouteCommand(cmd) }, 'route applied')
}

interface RuleSelector {
  readonly family: '-4' | '-6'
  readonly fwmark: number
  readonly table: string
}

/** `[-4|-6, rule, add, fwmark, M, lookup, T]`; any other shape is run as is. */
function ruleSelector(cmd: RouteCommand): RuleSelector | undefined {
  const [family, obj, verb, k1, mark, k2, table, ...rest] = cmd
  if ((family !== '-4' && family !== '-6') || obj !== 'rule' || verb !== 'add' || rest.length > 0) return undefined
  if (k1 !== 'fwmark' || (k2 !== 'lookup' && k2 !== 'table') || mark === undefined || table === undefined) return undefined
  const fwmark = Number(mark)
  return Number.isInteger(fwmark) ? { family, fwmark, table } : undefined
}

async function ruleExists(sel: RuleSelector, runner: Runner): Promise<boolean> {
  const args = [sel.family, '-j', 'rule', 'show']
  const r = await start(runner, 'ip', args, undefined, 'NETFILTER_ROUTE_FAILED')
  let rules: unknown
  try {
    rules = r.code === 0 ? JSON.parse(r.stdout) : undefined
  } catch (cause) {
    throw new NetfilterError('NETFILTER_ROUTE_FAILED', `ip ${args.join(' ')}: output is not JSON`, { stdout: r.stdout.slice(0, 200) }, { cause })
  }
  if (!Array.isArray(rules)) {
    throw new NetfilterError('NETFILTER_ROUTE_FAILED', `ip ${args.join(' ')} failed (exit ${r.code}): ${firstLine(r.stderr)}`, {
      command: `ip ${args.join(' ')}`,
      exitCode: r.code,
      stderr: r.stderr,
    })
  }
  // `ip -j` prints the mark in hex ("0x50e") and the table by number or name.
  return rules.some((e: Record<string, unknown>) => {
    if (typeof e !== 'object' || e === null || typeof e.fwmark !== 'string') return false
    // A masked rule (`fwmark 0x50e/0xff`) is a different rule.
    if (e.fwmask !== undefined && Number(e.fwmask) !== 0xffffffff) return false
    return Number(e.fwmark) === sel.fwmark && String(e.table) === sel.table
  })
}

async function start(
  runner: Runner,
  cmd: string,
  args: readonly string[],
  opts: RunOptions | undefined,
  code: 'NETFILTER_APPLY_FAILED' | 'NETFILTER_ROUTE_FAILED' | 'NETFILTER_REMOVE_FAILED',
): Promise<RunResult> {
  try {
    return await runner.run(cmd, args, opts)
  } catch (cause) {
    throw new NetfilterError(code, `could not run ${cmd}: ${(cause as Error).message}`, { command: [cmd, ...args].join(' ') }, { cause })
  }
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0] ?? ''
}
