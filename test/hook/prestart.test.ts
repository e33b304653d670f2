import { describe, expect, it } from 'vitest'
import { runPrestart, type PrestartDeps } from '../../src/hook/index.js'
import { HookError } from '../../src/hook/errors.js'
import type { MeshStatus } from '../../src/pki/index.js'

const ID = 'c'.repeat(64)
const STATE = JSON.stringify({ ociVersion: '1.1.0', id: ID, status: 'created', pid: 77, bundle: `/run/kata-containers/${ID}`, annotations: {} })
const SANDBOX = JSON.stringify({ ...JSON.parse(STATE), annotations: { 'io.kubernetes.cri.container-type': 'sandbox' } })

/** Fake world on a fake clock; records every action in order. */
function world(statuses: (MeshStatus | Error)[], opts: { exposeFails?: boolean } = {}) {
  let t = 0
  const actions: string[] = []
  const deps: PrestartDeps = {
    now: () => t,
    sleep: async (ms) => {
      t += ms
    },
    readStatus: (path) => {
      actions.push(`read ${path}`)
      const s = statuses.length > 1 ? statuses.shift()! : statuses[0]!
      if (s instanceof Error) throw s
      return s
    },
    openProcess: async (pid) => {
      actions.push(`open ${pid}`)
      return {
        expose: (rootfs, dirs) => {
          if (opts.exposeFails) throw new HookError('HOOK_UNSAFE_PATH', '/contrast in the container is a symlink or not a directory', {})
          actions.push(`expose ${rootfs} ${dirs.map((d) => `${d.source}(${d.sourceMode.toString(8)})->/${d.target.join('/')}`).join(' ')}`)
        },
        kill: () => actions.push('kill'),
        close: () => actions.push('close'),
      }
    },
  }
  const lines: string[] = []
  const say = { info: (l: string) => lines.push(`info ${l}`), error: (l: string) => lines.push(`error ${l}`) }
  return { deps, actions, lines, elapsed: () => t, say }
}

const OPTS = { tlsDir: '/contrast/tls-config', bundleRoot: '/run/kata-containers', deadline: 8_000, pollMs: 100 }
const EXPOSE = `expose /run/kata-containers/${ID}/rootfs /contrast/tls-config(755)->/contrast/tls-config /contrast/secrets(700)->/contrast/secrets`

describe('runPrestart', () => {
  it('ready: binds both directories and lets the container run', async () => {
    const w = world([{ state: 'ready' }])
    expect(await runPrestart(STATE, OPTS, w.deps, w.say)).toEqual({ outcome: 'exposed', exitCode: 0 })
    expect(w.actions).toEqual(['open 77', 'read /contrast/mesh-status', EXPOSE, 'close'])
    expect(w.elapsed()).toBe(0)
  })

  it('the pause container: reads nothing, touches no process', async () => {
    const w = world([{ state: 'failed', reason: 'X' }])
    expect(await runPrestart(SANDBOX, OPTS, w.deps, w.say)).toEqual({ outcome: 'skipped', exitCode: 0 })
    expect(w.actions).toEqual([])
  })

  it('pending, then ready: waits, then binds', async () => {
    const w = world([{ state: 'pending' }, { state: 'pending' }, { state: 'pending' }, { state: 'ready' }])
    expect((await runPrestart(STATE, OPTS, w.deps, w.say)).outcome).toBe('exposed')
    expect(w.elapsed()).toBe(300)
  })

  it('still pending at the deadline: binds anyway, the files appear when the mesh writes them', async () => {
    const w = world([{ state: 'pending' }])
    expect(await runPrestart(STATE, OPTS, w.deps, w.say)).toEqual({ outcome: 'exposed-before-ready', exitCode: 0 })
    expect(w.elapsed()).toBe(8_000)
    expect(w.actions).toContain(EXPOSE)
    expect(w.actions).not.toContain('kill')
  })

  it('the last sleep stops at the deadline, never after it', async () => {
    const w = world([{ state: 'pending' }])
    await runPrestart(STATE, { ...OPTS, deadline: 250 }, w.deps, w.say)
    expect(w.elapsed()).toBe(250)
  })

  it('failed: kills the init process and mounts nothing (fail closed)', async () => {
    const w = world([{ state: 'pending' }, { state: 'failed', reason: 'COORDINATOR_POLICY_NOT_FOUND' }])
    expect(await runPrestart(STATE, OPTS, w.deps, w.say)).toEqual({ outcome: 'killed', exitCode: 1 })
    expect(w.actions.filter((a) => !a.startsWith('read'))).toEqual(['open 77', 'kill', 'close'])
    expect(w.lines).toEqual([`error container ${ID}: the mesh has failed (COORDINATOR_POLICY_NOT_FOUND); stopped the container before its workload ran`])
  })

  it('certificates that cannot be made visible: kills the init process', async () => {
    const w = world([{ state: 'ready' }], { exposeFails: true })
    expect(await runPrestart(STATE, OPTS, w.deps, w.say)).toEqual({ outcome: 'killed', exitCode: 1 })
    expect(w.actions.at(-2)).toBe('kill')
    expect(w.lines[0]).toMatch(/HOOK_UNSAFE_PATH: \/contrast in the container is a symlink/)
  })

  it('an unreadable status is waited out like pending and named', async () => {
    const w = world([new Error('mesh status "rea" is not …')])
    expect((await runPrestart(STATE, OPTS, w.deps, w.say)).outcome).toBe('exposed-before-ready')
    expect(w.lines[0]).toMatch(/status unreadable: mesh status "rea"/)
  })

  it.each([
    ['malformed JSON', '{"ociVersion":'],
    ['a bundle that is not the id', STATE.replace(`/run/kata-containers/${ID}`, '/run/kata-containers/other')],
  ])('%s: refused, nothing done', async (_name, text) => {
    const w = world([{ state: 'failed', reason: 'X' }])
    expect(await runPrestart(text, OPTS, w.deps, w.say)).toEqual({ outcome: 'refused', exitCode: 2 })
    expect(w.actions).toEqual([])
    expect(w.lines[0]).toMatch(/^error refused: state on stdin.*; nothing done$/)
  })

  it('a process that cannot be held (gone, or in the guest namespace): refused, nothing done', async () => {
    const w = world([{ state: 'failed', reason: 'X' }])
    w.deps.openProcess = async () => {
      throw new HookError('HOOK_BAD_PROCESS', 'process 77 shares the hook\'s mount namespace; it is not a container being created', {})
    }
    expect(await runPrestart(STATE, OPTS, w.deps, w.say)).toEqual({ outcome: 'refused', exitCode: 2 })
    expect(w.actions).toEqual([])
  })
})
