// The mesh lab: pods as namespaces, a test PKI, apps, daemons, probes and captures.
// The demo tells a story with it; the end-to-end tests assert on it. Processes run
// from the built tree (dist/), exactly as an image would run them.

import type { ChildProcess } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeyPair, writeTlsDir, type Curve } from '../pki/index.js'
import { createAuthority, createMeshAuthority, issueLeaf, type Authority, type RawExtension } from '../pki/issuing.js'
import type { EchoEvent, EchoServerOptions } from './echo-server.js'
import type { ProbeOptions, ProbeResult } from './probe.js'
import { buildLabRootfs, runContainer, writeBundle, writeLabHook } from './container.js'
import { createTopology, run, type ExecResult, type NetnsNode, type Topology, type TopologyOptions } from './topology.js'

/** dist/ of this checkout: this module sits at src/demo/ (tests) or dist/demo/. */
export const DIST = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'dist')
const NODE = process.execPath

export interface LineProcess {
  readonly child: ChildProcess
  readonly lines: string[]
  /** Resolves with the first line matching, or rejects after timeoutMs. */
  waitFor(pred: (line: string) => boolean, timeoutMs: number, what: string): Promise<string>
  readonly exited: Promise<number | null>
  kill(signal?: NodeJS.Signals): void
}

/** Calls `fn` with each complete line of `stream` (UTF-8), without its newline. */
export function onLines(stream: NodeJS.ReadableStream | null, fn: (line: string) => void): void {
  let buf = ''
  stream?.setEncoding('utf8')
  stream?.on('data', (chunk: string) => {
    buf += chunk
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      fn(line)
    }
  })
}

/**
 * Collects a child's stdout and stderr line by line. `maxLines` bounds what is kept
 * (long benchmark runs): beyond it the oldest half is dropped.
 */
export function lineProcess(child: ChildProcess, opts: { maxLines?: number } = {}): LineProcess {
  const maxLines = opts.maxLines ?? Infinity
  const lines: string[] = []
  const waiters = new Set<{ pred: (l: string) => boolean; resolve: (l: string) => void }>()
  const feed = (line: string): void => {
    lines.push(line)
    if (lines.length > maxLines) lines.splice(0, Math.floor(maxLines / 2))
    for (const w of waiters) {
      if (w.pred(line)) {
        waiters.delete(w)
        w.resolve(line)
      }
    }
  }
  onLines(child.stdout, feed)
  onLines(child.stderr, feed)
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)))
  return {
    child,
    lines,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    },
    waitFor(pred, timeoutMs, what) {
      const seen = lines.find(pred)
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((res, rej) => {
        const w = { pred, resolve: (l: string) => (clearTimeout(t), res(l)) }
        const t = setTimeout(() => {
          waiters.delete(w)
          rej(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last lines:\n${lines.slice(-15).join('\n')}`))
        }, timeoutMs)
        waiters.add(w)
        void exited.then((code) => {
          if (!waiters.has(w)) return
          waiters.delete(w)
          clearTimeout(t)
          rej(new Error(`process exited (${code}) while waiting for ${what}; last lines:\n${lines.slice(-15).join('\n')}`))
        })
      })
    },
  }
}

/** The lines that are JSON objects (a process may print other lines too). */
function jsonLines<T>(lines: readonly string[]): T[] {
  return lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as T]
    } catch {
      return []
    }
  })
}

/** A podvm-mesh process logging pino JSON; ready once a line contains `readyMark`. */
function meshProcess(child: ChildProcess, readyMark: string, what: string): Daemon {
  const p = lineProcess(child)
  return {
    ...p,
    records: () => jsonLines<Record<string, unknown>>(p.lines),
    waitReady: async (timeoutMs = 20_000) => {
      await p.waitFor((l) => l.includes(readyMark), timeoutMs, what)
    },
  }
}

export interface EchoApp extends LineProcess {
  events(): EchoEvent[]
  /** Whether any connection's first bytes contained the marker. */
  sawMarker(marker: string): boolean
}

export interface Daemon extends LineProcess {
  records(): Record<string, unknown>[]
  waitReady(timeoutMs?: number): Promise<void>
}

export interface Capture {
  /** Stops tcpdump and returns the raw pcap bytes. */
  stop(): Promise<Buffer>
}

export interface LabPki {
  readonly meshCa: Authority
  readonly otherCa: Authority
  /** Contrast-layout directory per node (mesh CA). */
  tlsDir(node: string): string
  /** A client certificate from another CA, for C's attacks. */
  readonly foreign: { readonly cert: string; readonly key: string; readonly ca: string }
  /** Issues (or re-issues) a node's mesh certificate into its directory. */
  issue(node: string, sans: readonly string[], dir?: string): Promise<{ serial: string }>
}

/**
 * The lab CA's profile. The default is the demo's (P-256 throughout, 24 h leaves);
 * a test that stands in for Contrast's coordinator sets Contrast's (P-384 CAs, its CA
 * names, one-year leaves). Leaf keys are P-256 either way, as pods generate them.
 */
export interface LabPkiOptions {
  readonly caCurve?: Curve
  readonly rootName?: string
  readonly meshCaName?: string
  readonly leafLifetimeMs?: number
  /** Added to every leaf, after the profile's own extensions. */
  readonly leafExtensions?: readonly RawExtension[]
}

export class MeshLab {
  readonly topology: Topology
  readonly pki: LabPki
  readonly workDir: string
  readonly #processes = new Set<LineProcess>()
  readonly #containers = new Set<string>()

  private constructor(topology: Topology, pki: LabPki, workDir: string) {
    this.topology = topology
    this.pki = pki
    this.workDir = workDir
  }

  static async create(opts: TopologyOptions, pkiOptions: LabPkiOptions = {}): Promise<MeshLab> {
    const workDir = await mkdtemp(join(tmpdir(), `${opts.prefix}-`))
    const topology = await createTopology(opts)
    try {
      const pki = await createLabPki(workDir, pkiOptions)
      return new MeshLab(topology, pki, workDir)
    } catch (err) {
      await topology.cleanup()
      throw err
    }
  }

  node(name: string): NetnsNode {
    return this.topology.node(name)
  }

  #track<T extends LineProcess>(p: T): T {
    this.#processes.add(p)
    void p.exited.then(() => this.#processes.delete(p))
    return p
  }

  async startApp(node: string, opts: EchoServerOptions): Promise<EchoApp> {
    const child = this.topology.spawn(node, NODE, [join(DIST, 'demo', 'echo-server.js'), JSON.stringify(opts)])
    const p = lineProcess(child)
    const events = (): EchoEvent[] => jsonLines<EchoEvent>(p.lines)
    const app: EchoApp = {
      ...p,
      events,
      sawMarker: (marker) => events().some((e) => e.event === 'data' && e.head.includes(marker)),
    }
    for (const port of opts.ports) {
      await p.waitFor((l) => l.includes('"listening"') && l.includes(`"port":${port}`), 10_000, `app on ${node}:${port}`)
    }
    return this.#track(app)
  }

  /** `podvm-mesh run` inside the node's namespace, with JSON logs collected. */
  startDaemon(node: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Daemon {
    const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`)
    // Each pod its own Envoy work directory: with Envoy on PATH (`--dataplane auto`) two
    // daemons sharing the default /run/podvm-mesh/envoy overwrite each other's bootstrap
    // and SDS files, and ingress stops working (seen in the demo).
    const workDir = args.includes('--work-dir') ? [] : ['--work-dir', join(this.workDir, node, 'envoy')]
    const child = this.topology.spawn(node, 'env', [...envArgs, NODE, join(DIST, 'cli.js'), 'run', ...args, ...workDir])
    return this.#track(meshProcess(child, '"msg":"ready"', `daemon on ${node} to be ready`))
  }

  /**
   * `podvm-mesh coordinator` inside the node's namespace, JSON logs collected;
   * `waitReady` resolves once it listens.
   */
  startCoordinator(node: string, args: readonly string[]): Daemon {
    const child = this.topology.spawn(node, NODE, [join(DIST, 'cli.js'), 'coordinator', ...args])
    return this.#track(meshProcess(child, '"msg":"coordinator listening"', `coordinator on ${node} to listen`))
  }

  /** One client connection from inside the node's namespace. */
  async probe(node: string, opts: ProbeOptions): Promise<ProbeResult> {
    const r = await this.topology.exec(node, NODE, [join(DIST, 'demo', 'probe.js'), JSON.stringify(opts)], {
      timeoutMs: (opts.timeoutMs ?? 5_000) + (opts.holdMs ?? 0) + 60_000,
    })
    const line = r.stdout.trim().split('\n').pop() ?? ''
    try {
      return JSON.parse(line) as ProbeResult
    } catch {
      throw new Error(`probe from ${node} printed no result (exit ${r.code}): ${r.stderr.trim()}`)
    }
  }

  /**
   * tcpdump on the node's eth0, TCP only, written unbuffered to a file. Immediate mode:
   * otherwise libpcap hands packets over in blocks, and a stop before the block timeout
   * loses them ("N packets received by filter, 0 captured").
   */
  async capture(node: string, filter = 'tcp'): Promise<Capture> {
    const file = join(this.workDir, `${node}-${Date.now()}.pcap`)
    const child = this.topology.spawn(node, 'tcpdump', ['-i', 'eth0', '--immediate-mode', '-U', '-n', '-s', '0', '-w', file, filter])
    const p = this.#track(lineProcess(child))
    await p.waitFor((l) => l.includes('listening on'), 10_000, `tcpdump on ${node}`)
    return {
      stop: async () => {
        p.kill('SIGINT')
        await p.exited
        return readFile(file)
      },
    }
  }

  /**
   * Runs a container in `node`'s network namespace under runc, with the guest hook
   * configured as kata-agent does (src/demo/container.ts): the node's TLS directory is
   * its guest `/contrast/tls-config`. Its root file system holds `binaries` from the host.
   * Resolves when the container exits, with what the hook printed.
   */
  async runContainer(node: string, name: string, args: readonly string[], binaries: readonly string[]): Promise<ExecResult & { hook: string }> {
    const n = this.node(node)
    const guest = join(this.workDir, node)
    const rootfs = join(guest, `rootfs-${name}`)
    buildLabRootfs(rootfs, ['sh', ...binaries])
    const bundleRoot = join(guest, 'run-kata-containers')
    const hook = join(guest, 'podvm-mesh-certs')
    const record = join(guest, 'hook')
    writeLabHook(hook, { cli: join(DIST, 'cli.js'), tlsDir: this.pki.tlsDir(node), bundleRoot, record })
    const id = `${n.ns}-${name}`
    const bundle = writeBundle({ id, bundleRoot, rootfs, args, hook, netnsPath: `/run/netns/${n.ns}`, annotations: { 'io.kubernetes.cri.container-type': 'container' } })
    this.#containers.add(id)
    const r = await runContainer(bundle, id)
    this.#containers.delete(id)
    const hookOut = await Promise.all(['stdout', 'stderr'].map((f) => readFile(`${record}.${f}`, 'utf8').catch(() => '')))
    return { ...r, hook: hookOut.join('') }
  }

  async destroy(): Promise<void> {
    for (const id of this.#containers) await run('runc', ['delete', '--force', id])
    for (const p of this.#processes) p.kill('SIGKILL')
    await Promise.all([...this.#processes].map((p) => p.exited))
    await this.topology.cleanup()
    await rm(this.workDir, { recursive: true, force: true })
  }
}

async function createLabPki(workDir: string, opts: LabPkiOptions): Promise<LabPki> {
  const curve = opts.caCurve
  const root = await createAuthority({ commonName: opts.rootName ?? 'podvm-mesh demo root', curve })
  const { meshCa, intermediate } = await createMeshAuthority({ root, commonName: opts.meshCaName ?? 'podvm-mesh demo mesh CA', curve })
  const otherCa = await createAuthority({ commonName: 'some other CA' })
  const foreignKey = await generateKeyPair()
  const foreignLeaf = await issueLeaf(otherCa, { sans: ['intruder.test'], publicKey: foreignKey.keys.publicKey })
  const foreignDir = join(workDir, 'foreign')
  await writeTlsDir(foreignDir, { meshCa: otherCa.certificatePem, certChain: foreignLeaf.certificatePem, key: foreignKey.privateKeyPem })
  // Each node's guest layout, as in the pod VM: <node>/contrast/{tls-config,mesh-status}.
  const tlsDir = (node: string): string => join(workDir, node, 'contrast', 'tls-config')
  return {
    meshCa,
    otherCa,
    tlsDir,
    foreign: { cert: join(foreignDir, 'certChain.pem'), key: join(foreignDir, 'key.pem'), ca: join(foreignDir, 'mesh-ca.pem') },
    async issue(node, sans, dir = tlsDir(node)) {
      const kp = await generateKeyPair()
      const leaf = await issueLeaf(meshCa, { sans, publicKey: kp.keys.publicKey, lifetimeMs: opts.leafLifetimeMs, extraExtensions: opts.leafExtensions })
      await writeTlsDir(dir, {
        // As in Contrast: trust the self-signed mesh CA, present leaf ‖ intermediate.
        meshCa: meshCa.certificatePem,
        certChain: leaf.certificatePem + intermediate.certificatePem,
        key: kp.privateKeyPem,
        rootCa: root.certificatePem,
      })
      return { serial: new X509Certificate(leaf.certificatePem).serialNumber }
    },
  }
}
