// The hook file the guest image carries: what kata-agent's find_hooks accepts, and what
// runs with no environment at all.
import { lstatSync, readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { GUEST_HOOK_PATH } from '../../src/policy/index.js'

const tree = new URL('../../guest-image/tree/', import.meta.url)
const dir = new URL(`.${GUEST_HOOK_PATH}/prestart/`, tree)

describe('guest image hook directory', () => {
  it('is the directory the policy pins, with one prestart hook and no other phase', () => {
    expect(readdirSync(new URL(`.${GUEST_HOOK_PATH}/`, tree))).toEqual(['prestart'])
    expect(readdirSync(dir)).toEqual(['podvm-mesh-certs'])
  })

  it('the hook is a regular executable file, not a symlink (the agent skips symlinks)', () => {
    const st = lstatSync(new URL('podvm-mesh-certs', dir))
    expect(st.isFile()).toBe(true)
    expect(st.mode & 0o111).toBe(0o111)
  })

  it('uses absolute paths only and runs the hook command on the staged Node.js', () => {
    const lines = readFileSync(new URL('podvm-mesh-certs', dir), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('# ') && l !== '#')
    expect(lines).toEqual(['#!/bin/sh', 'exec /opt/podvm-mesh/node/bin/node /opt/podvm-mesh/dist/cli.js hook "$@"'])
    // Where guest-image/build.sh stages Node.js and the build.
    const build = readFileSync(new URL('../../guest-image/build.sh', import.meta.url), 'utf8')
    expect(build).toContain('app="$stage/opt/podvm-mesh"')
    expect(build).toContain('"$app/node/bin/node"')
  })
})
