import { describe, expect, it } from 'vitest'
import { parseHookState } from '../../src/hook/index.js'
import { thrown } from '../support.js'

const ID = 'a'.repeat(64)
// What kata-agent writes to a guest hook's stdin (kata-guest-hooks.md §3).
const KATA = {
  ociVersion: '1.1.0',
  id: ID,
  status: 'created',
  pid: 4242,
  bundle: `/run/kata-containers/${ID}`,
  annotations: { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.container-name': 'app' },
}
const state = (over: Record<string, unknown>) => JSON.stringify({ ...KATA, ...over })

describe('parseHookState', () => {
  it('reads the agent state of a workload container', () => {
    expect(parseHookState(JSON.stringify(KATA))).toEqual({
      id: ID,
      pid: 4242,
      bundle: `/run/kata-containers/${ID}`,
      rootfs: `/run/kata-containers/${ID}/rootfs`,
      sandbox: false,
    })
  })

  it('tells the pause container by its CRI annotation', () => {
    expect(parseHookState(state({ annotations: { 'io.kubernetes.cri.container-type': 'sandbox' } })).sandbox).toBe(true)
  })

  it('a state without annotations is a workload container', () => {
    expect(parseHookState(state({ annotations: undefined })).sandbox).toBe(false)
  })

  it('takes another bundle root (runc tests)', () => {
    expect(parseHookState(state({ bundle: `/tmp/b/${ID}` }), '/tmp/b').rootfs).toBe(`/tmp/b/${ID}/rootfs`)
  })

  it.each([
    ['not JSON', '{"id":', /not JSON/],
    ['an array', '[]', /not an OCI state/],
    ['no pid', state({ pid: undefined }), /pid/],
    ['pid 1', state({ pid: 1 }), /pid 0 and 1/],
    ['a negative pid', state({ pid: -5 }), /pid/],
    ['a fractional pid', state({ pid: 4.5 }), /pid/],
    ['a pid as a string', state({ pid: '4242' }), /pid/],
    ['an id with a slash', state({ id: '../etc', bundle: '/run/etc' }), /id/],
    ['an empty id', state({ id: '' }), /id/],
    ['the bundle of another id', state({ bundle: `/run/kata-containers/${'b'.repeat(64)}` }), /is not \/run\/kata-containers\/a{64}/],
    ['a bundle outside the root', state({ bundle: `/tmp/${ID}` }), /bundle/],
    ['a bundle with ..', state({ bundle: `/run/kata-containers/x/../${ID}` }), /bundle/],
    ['a relative bundle', state({ bundle: `run/kata-containers/${ID}` }), /bundle/],
    ['annotations that are not strings', state({ annotations: { a: 1 } }), /annotations/],
    ['more than 1 MiB', JSON.stringify({ ...KATA, pad: 'x'.repeat(1 << 20) }), /more than/],
  ])('refuses %s', (_name, text, message) => {
    const err = thrown(() => parseHookState(text))
    expect(err).toMatchObject({ code: 'HOOK_BAD_STATE' })
    expect(err.message).toMatch(message)
  })
})
