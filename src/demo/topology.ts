// A small network of pods as network namespaces on one bridge, for the demo and the
// end-to-end tests. Every node gets eth0 with an IPv4 (10.<net>.0.<i>/24) and an IPv6
// (fd00:<net>::<i>/64) address; the bridge lives in a namespace of its own so nothing
// touches the host's root namespace. Names resolve per namespace through
// /etc/netns/<ns>/hosts, which `ip netns exec` mounts over /etc/hosts.

import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, rm, writeFile } from 'node:fs/promises'

export interface NodeSpec {
  /** Short name, e.g. `a`; the namespace is `<prefix>-<name>`. */
  readonly name: string
  /** Host names that resolve to this node's addresses in every namespace. */
  readonly hostnames?: readonly string[]
}

export interface TopologyNode {
  readonly name: string
  readonly ns: string
  readonly ipv4: string
  readonly ipv6: string
  /** The host-side end of its veth, inside the bridge namespace. */
  readonly bridgePort: string
}

export interface ExecResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export interface Topology {
  readonly prefix: string
  readonly bridgeNs: string
  readonly nodes: Readonly<Record<string, TopologyNode>>
  node(name: string): TopologyNode
  exec(ns: string, cmd: string, args: readonly string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>
  spawn(ns: string, cmd: string, args: readonly string[]): ChildProcess
  destroy(): Promise<void>
}

function run(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      [...args],
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
        resolve({ code, stdout, stderr: stderr || (err !== null && code !== 0 ? err.message : '') })
      },
    )
    if (opts.input !== undefined) child.stdin?.end(opts.input)
  })
}

async function must(cmd: string, args: readonly string[]): Promise<string> {
  const r = await run(cmd, args)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`)
  return r.stdout
}

/** Deletes namespaces and hosts files left by an earlier run with this prefix. */
export async function cleanupStale(prefix: string): Promise<void> {
  const list = await run('ip', ['netns', 'list'])
  const names = list.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`))
  for (const ns of names) {
    await killNamespaceProcesses(ns)
    await run('ip', ['netns', 'delete', ns])
    await rm(`/etc/netns/${ns}`, { recursive: true, force: true })
  }
}

async function killNamespaceProcesses(ns: string): Promise<void> {
  const pids = await run('ip', ['netns', 'pids', ns])
  for (const pid of pids.stdout.split('\n').filter((p) => p.trim() !== '')) {
    try {
      process.kill(Number(pid), 'SIGKILL')
    } catch {
      // already gone
    }
  }
}

export async function createTopology(opts: {
  readonly prefix: string
  /** Second octet of 10.x and the fd00:x:: prefix; distinct per concurrent user. */
  readonly net: number
  readonly nodes: readonly NodeSpec[]
}): Promise<Topology> {
  const { prefix, net } = opts
  await cleanupStale(prefix)
  const bridgeNs = `${prefix}-br`
  const nodes: Record<string, TopologyNode> = {}
  const created: string[] = []
  const destroy = async (): Promise<void> => {
    for (const ns of [...created].reverse()) {
      await killNamespaceProcesses(ns)
      await run('ip', ['netns', 'delete', ns])
      await rm(`/etc/netns/${ns}`, { recursive: true, force: true })
    }
    created.length = 0
  }
  try {
    await must('ip', ['netns', 'add', bridgeNs])
    created.push(bridgeNs)
    const inBr = (...args: string[]) => must('ip', ['-n', bridgeNs, ...args])
    await inBr('link', 'add', 'br0', 'type', 'bridge')
    await inBr('link', 'set', 'br0', 'up')
    await inBr('link', 'set', 'lo', 'up')
    let i = 1
    for (const spec of opts.nodes) {
      const ns = `${prefix}-${spec.name}`
      await must('ip', ['netns', 'add', ns])
      created.push(ns)
      const port = `p-${spec.name}`
      await must('ip', ['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', bridgeNs])
      await inBr('link', 'set', port, 'master', 'br0')
      await inBr('link', 'set', port, 'up')
      const inNs = (...args: string[]) => must('ip', ['-n', ns, ...args])
      await inNs('link', 'set', 'lo', 'up')
      const ipv4 = `10.${net}.0.${i}`
      const ipv6 = `fd00:${net}::${i}`
      await inNs('addr', 'add', `${ipv4}/24`, 'dev', 'eth0')
      // nodad: the address is usable at once instead of after duplicate detection.
      await inNs('addr', 'add', `${ipv6}/64`, 'dev', 'eth0', 'nodad')
      await inNs('link', 'set', 'eth0', 'up')
      nodes[spec.name] = { name: spec.name, ns, ipv4, ipv6, bridgePort: port }
      i++
    }
    const hostLines = ['127.0.0.1 localhost', '::1 localhost']
    for (const spec of opts.nodes) {
      const n = nodes[spec.name]!
      for (const h of spec.hostnames ?? []) hostLines.push(`${n.ipv4} ${h}`)
    }
    for (const n of Object.values(nodes)) {
      await mkdir(`/etc/netns/${n.ns}`, { recursive: true })
      await writeFile(`/etc/netns/${n.ns}/hosts`, `${hostLines.join('\n')}\n`)
    }
  } catch (err) {
    await destroy()
    throw err
  }
  return {
    prefix,
    bridgeNs,
    nodes,
    node(name) {
      const n = nodes[name]
      if (n === undefined) throw new Error(`no node ${name} in topology ${prefix}`)
      return n
    },
    exec: (ns, cmd, args, o) => run('ip', ['netns', 'exec', ns, cmd, ...args], o),
    spawn: (ns, cmd, args) => spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    destroy,
  }
}
