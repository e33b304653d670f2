// Pods as network namespaces on one bridge, for `podvm-mesh demo` and the end-to-end
// tests (root only).
//
//   const topo = await createTopology({ prefix: 'pmxx', nodes: ['c', 'b'], hosts: { b: ['b.mesh.test'] } })
//   const b = topo.node('b')                   // { name, ns, ifname, ipv4, ipv6, ipv4Cidr, ipv6Cidr }
//   const r = await topo.exec('b', 'nft', ['list', 'ruleset'])       // { code, stdout, stderr }
//   const srv = topo.spawn('b', 'node', ['-e', '...'])                // ChildProcess, killed by cleanup()
//   await waitFor(() => ..., { timeoutMs: 2000 })                     // bounded poll
//   await topo.cleanup()
//
// Layout: every node is a namespace `<prefix>-<node>` with `lo` up and one interface
// `eth0`, the veth peer of port `p-<node>` on bridge `br0`, which lives in its own
// namespace `<prefix>-br` (never the host's root namespace). Node i (0-based, in the
// order given) gets 10.<subnet>.0.<i+1>/24 and fd00:<subnet>::<i+1>/64; IPv6 DAD is off
// (sysctl before the interface exists, and `nodad`), so addresses are usable at once.
// Host names resolve per namespace through /etc/netns/<ns>/hosts, which `ip netns
// exec` mounts over /etc/hosts. The prefix must be unique to a user: `cleanupStale(prefix)`
// (also run by createTopology) deletes every namespace `<prefix>-*` left by a crashed run.
//
// exec/spawn run `ip netns exec <ns> cmd args...` without a shell.

import { spawn as spawnChild, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { mkdir, rm, writeFile } from 'node:fs/promises'

export interface ExecResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export interface ExecOptions {
  /** Written to stdin, which is then closed. */
  readonly input?: string
  /** Kill the command after this long (SIGKILL) and report code 124. Default 10 s. */
  readonly timeoutMs?: number
}

export interface NetnsNode {
  /** The caller's name, e.g. `b`. */
  readonly name: string
  /** The namespace, `<prefix>-<name>`. */
  readonly ns: string
  readonly ifname: 'eth0'
  readonly ipv4: string
  readonly ipv6: string
  readonly ipv4Cidr: string
  readonly ipv6Cidr: string
}

export interface TopologyOptions {
  /** 1-8 chars, [a-z0-9], starting with a letter; unique to the calling suite. */
  readonly prefix: string
  /** Node names, 1-6 chars [a-z0-9] starting with a letter; at most 250. */
  readonly nodes: readonly string[]
  /** Second octet of 10.x.0.0/24 and the fd00:x::/64 group; default 77. */
  readonly subnet?: number
  /** Host names per node, resolvable (to its IPv4 address) in every node's namespace. */
  readonly hosts?: Readonly<Record<string, readonly string[]>>
}

export interface Topology extends AsyncDisposable {
  readonly prefix: string
  readonly bridgeNs: string
  readonly nodes: readonly NetnsNode[]
  /** The node called `name`; throws for an unknown name. */
  node(name: string): NetnsNode
  /** Runs a command in the node's namespace; never rejects for a non-zero exit. */
  exec(node: string, cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult>
  /** Starts a long-running command in the node's namespace; cleanup() kills it. */
  spawn(node: string, cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess
  /** Kills what spawn started and deletes every namespace; idempotent, never throws. */
  cleanup(): Promise<void>
}

const DEFAULT_TIMEOUT_MS = 10_000
const PREFIX_RE = /^[a-z][a-z0-9]{0,7}$/
const NODE_RE = /^[a-z][a-z0-9]{0,5}$/

/** Runs a program (no shell), collecting its output. Resolves even on failure. */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawnChild(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS)
    child.stdout?.on('data', (b: Buffer) => out.push(b))
    child.stderr?.on('data', (b: Buffer) => err.push(b))
    child.stdin?.on('error', () => {})
    child.on('error', (e) => {
      clearTimeout(timer)
      resolve({ code: 127, stdout: '', stderr: e.message })
    })
    child.on('close', (code) => {
      clearTimeout(timer)
      const stderr = Buffer.concat(err).toString('utf8')
      resolve({
        code: timedOut ? 124 : (code ?? 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: timedOut ? `${stderr}[killed after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms]` : stderr,
      })
    })
    child.stdin?.end(opts.input ?? '')
  })
}

/** `ip netns exec ns cmd args...` */
export function netnsExec(ns: string, cmd: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
  return run('ip', ['netns', 'exec', ns, cmd, ...args], opts)
}

async function must(cmd: string, args: readonly string[]): Promise<string> {
  const r = await run(cmd, args)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`)
  return r.stdout
}

/** Polls `check` every `intervalMs` until it returns true or `timeoutMs` passes. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  { timeoutMs = 2000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return true
    if (Date.now() >= deadline) return false
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

function onPath(bin: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, bin), constants.X_OK)
      return true
    } catch {
      // next
    }
  }
  return false
}

/** Why netns tests cannot run here, or undefined when they can. */
export function netnsUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `platform is ${process.platform}, not linux`
  if (process.getuid?.() !== 0) return 'not running as root'
  const missing = ['ip', 'nft', 'tcpdump'].filter((b) => !onPath(b))
  if (missing.length > 0) return `missing on PATH: ${missing.join(', ')}`
  return undefined
}

/** Namespaces whose name starts with `<prefix>-`. */
async function listNamespaces(prefix: string): Promise<string[]> {
  const r = await run('ip', ['netns', 'list'])
  if (r.code !== 0) return []
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`))
}

/** Kills processes inside `ns` (ours: the namespace carries our prefix), then deletes it. */
async function deleteNamespace(ns: string): Promise<string | undefined> {
  const pids = await run('ip', ['netns', 'pids', ns])
  for (const pid of pids.stdout.split('\n').map(Number).filter((n) => Number.isInteger(n) && n > 1)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  await rm(`/etc/netns/${ns}`, { recursive: true, force: true })
  const r = await run('ip', ['netns', 'del', ns])
  if (r.code === 0 || /No such file/.test(r.stderr)) return undefined
  return `ip netns del ${ns}: ${r.stderr.trim()}`
}

/** Deletes every namespace `<prefix>-*` (leftovers of a crashed run). */
export async function cleanupStale(prefix: string): Promise<void> {
  if (!PREFIX_RE.test(prefix)) throw new Error(`netns prefix "${prefix}" must match ${PREFIX_RE}`)
  for (const ns of await listNamespaces(prefix)) await deleteNamespace(ns)
}

export async function createTopology(opts: TopologyOptions): Promise<Topology> {
  const { prefix, nodes: names } = opts
  const subnet = opts.subnet ?? 77
  if (!PREFIX_RE.test(prefix)) throw new Error(`netns prefix "${prefix}" must match ${PREFIX_RE}`)
  if (!Number.isInteger(subnet) || subnet < 0 || subnet > 255) throw new Error(`subnet ${subnet} must be 0..255`)
  if (names.length === 0 || names.length > 250) throw new Error(`need 1..250 nodes, got ${names.length}`)
  for (const n of names) {
    if (!NODE_RE.test(n) || n === 'br') throw new Error(`node name "${n}" must match ${NODE_RE} and not be "br"`)
  }
  if (new Set(names).size !== names.length) throw new Error(`duplicate node names: ${names.join(', ')}`)

  await cleanupStale(prefix)
  const bridgeNs = `${prefix}-br`
  const created: string[] = []
  const children = new Set<ChildProcess>()
  const nodes: NetnsNode[] = names.map((name, i) => ({
    name,
    ns: `${prefix}-${name}`,
    ifname: 'eth0',
    ipv4: `10.${subnet}.0.${i + 1}`,
    ipv6: `fd00:${subnet.toString(16)}::${(i + 1).toString(16)}`,
    ipv4Cidr: `10.${subnet}.0.${i + 1}/24`,
    ipv6Cidr: `fd00:${subnet.toString(16)}::${(i + 1).toString(16)}/64`,
  }))

  let closed = false
  const cleanup = async (): Promise<void> => {
    if (closed) return
    closed = true
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    children.clear()
    const problems: string[] = []
    for (const ns of [...created].reverse()) {
      const p = await deleteNamespace(ns)
      if (p !== undefined) problems.push(p)
    }
    // Whatever a half-finished createTopology may have left with our prefix.
    for (const ns of await listNamespaces(prefix)) {
      const p = await deleteNamespace(ns)
      if (p !== undefined) problems.push(p)
    }
    if (problems.length > 0) process.stderr.write(`netns cleanup: ${problems.join('; ')}\n`)
  }

  const addNs = async (ns: string): Promise<void> => {
    await must('ip', ['netns', 'add', ns])
    created.push(ns)
    await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
  }

  try {
    await addNs(bridgeNs)
    await must('ip', ['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge'])
    await must('ip', ['-n', bridgeNs, 'link', 'set', 'br0', 'up'])
    for (const n of nodes) {
      await addNs(n.ns)
      // Before eth0 exists, so it inherits "no DAD" (link-local included).
      await must('ip', ['netns', 'exec', n.ns, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'])
      // Created directly in the two namespaces: no name ever exists in the root namespace.
      await must('ip', ['link', 'add', 'name', `p-${n.name}`, 'netns', bridgeNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.ns])
      await must('ip', ['-n', bridgeNs, 'link', 'set', `p-${n.name}`, 'master', 'br0', 'up'])
      await must('ip', ['-n', n.ns, 'addr', 'add', n.ipv4Cidr, 'dev', 'eth0'])
      await must('ip', ['-n', n.ns, 'addr', 'add', n.ipv6Cidr, 'dev', 'eth0', 'nodad'])
      await must('ip', ['-n', n.ns, 'link', 'set', 'eth0', 'up'])
    }
    const hostLines = ['127.0.0.1 localhost', '::1 localhost']
    for (const n of nodes) for (const h of opts.hosts?.[n.name] ?? []) hostLines.push(`${n.ipv4} ${h}`)
    for (const n of nodes) {
      await mkdir(`/etc/netns/${n.ns}`, { recursive: true })
      await writeFile(`/etc/netns/${n.ns}/hosts`, `${hostLines.join('\n')}\n`)
    }
  } catch (err) {
    await cleanup()
    throw err
  }

  const byName = new Map(nodes.map((n) => [n.name, n]))
  const node = (name: string): NetnsNode => {
    const n = byName.get(name)
    if (n === undefined) throw new Error(`no node "${name}" in topology ${prefix} (${names.join(', ')})`)
    return n
  }

  return {
    prefix,
    bridgeNs,
    nodes,
    node,
    exec: (name, cmd, args, o) => netnsExec(node(name).ns, cmd, args, o),
    spawn(name, cmd, args, o) {
      if (closed) throw new Error(`topology ${prefix} is cleaned up`)
      const child = spawnChild('ip', ['netns', 'exec', node(name).ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...o })
      children.add(child)
      child.on('exit', () => children.delete(child))
      child.on('error', () => children.delete(child))
      return child
    },
    cleanup,
    [Symbol.asyncDispose]: cleanup,
  }
}
