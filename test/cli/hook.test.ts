import { describe, expect, it } from 'vitest'
import { hookCommand } from '../../src/cli/hook.js'
import { capturedIo } from './io.js'

const io = (stdin: string) => capturedIo({ stdin })

describe('podvm-mesh hook', () => {
  it.each([
    [[], /expected the phase "prestart" as the one argument, got \[\]/],
    [['poststop'], /expected the phase "prestart" as the one argument, got \["poststop"\]/],
    [['prestart', 'extra'], /got \["prestart","extra"\]/],
    [['prestart', '--wait-ms', '10000'], /--wait-ms 10000: expected an integer 0\.\.9000/],
    [['prestart', '--bogus'], /Unknown option '--bogus'/],
  ])('%j: a usage error, exit 2, stdin never read', async (argv, message) => {
    const x = io('{"never":"read"}')
    expect(await hookCommand(argv, x)).toBe(2)
    expect(x.err()).toMatch(message)
  })

  it('malformed state: refused with the reason, exit 2', async () => {
    const x = io('{"ociVersion":')
    expect(await hookCommand(['prestart'], x)).toBe(2)
    expect(x.err()).toMatch(/^podvm-mesh hook: refused: state on stdin is not JSON: .*; nothing done\n$/)
  })

  it('the pause container: nothing to do, exit 0', async () => {
    const id = 'f'.repeat(64)
    const x = io(JSON.stringify({ ociVersion: '1.1.0', id, status: 'created', pid: 1234, bundle: `/run/kata-containers/${id}`, annotations: { 'io.kubernetes.cri.container-type': 'sandbox' } }))
    expect(await hookCommand(['prestart'], x)).toBe(0)
    expect(x.out()).toBe(`podvm-mesh hook: container ${id}: pause container, nothing to do\n`)
  })
})
