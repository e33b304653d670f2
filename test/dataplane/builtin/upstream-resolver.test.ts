import { describe, expect, it } from 'vitest'
import { UPSTREAM_ADDRESS_ENTRIES, UpstreamResolver } from '../../../src/dataplane/builtin/upstream-resolver.js'
import { rejected } from '../../support.js'

function fakeLookup(answers: Record<string, string[]>) {
  const calls: string[] = []
  const lookup = async (host: string): Promise<string> => {
    calls.push(host)
    const next = answers[host]?.shift()
    if (next === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
    return next
  }
  return { calls, lookup }
}

describe('UpstreamResolver', () => {
  it('reuses an address until the TTL passes, then looks the name up again', async () => {
    let now = 1_000
    const { calls, lookup } = fakeLookup({ 'b.mesh': ['10.0.0.2', '10.0.0.9'] })
    const r = new UpstreamResolver({ lookup, now: () => now, ttlMs: 5_000 })
    expect(await r.resolve('b.mesh')).toBe('10.0.0.2')
    now += 4_999
    expect(await r.resolve('b.mesh')).toBe('10.0.0.2')
    expect(calls).toEqual(['b.mesh'])
    now += 1
    expect(await r.resolve('b.mesh')).toBe('10.0.0.9')
    expect(calls).toEqual(['b.mesh', 'b.mesh'])
  })

  it('does not remember failures', async () => {
    const { calls, lookup } = fakeLookup({ 'late.mesh': [] })
    const r = new UpstreamResolver({ lookup, now: () => 0 })
    const err = await rejected(r.resolve('late.mesh'))
    expect((err as { code?: string }).code).toBe('ENOTFOUND')
    await rejected(r.resolve('late.mesh'))
    expect(calls).toEqual(['late.mesh', 'late.mesh'])
  })

  it('keeps at most UPSTREAM_ADDRESS_ENTRIES names, dropping the oldest', async () => {
    const answers: Record<string, string[]> = {}
    for (let i = 0; i <= UPSTREAM_ADDRESS_ENTRIES; i++) answers[`h${i}`] = ['10.0.0.1', '10.0.0.2']
    const { calls, lookup } = fakeLookup(answers)
    const r = new UpstreamResolver({ lookup, now: () => 0 })
    for (let i = 0; i <= UPSTREAM_ADDRESS_ENTRIES; i++) await r.resolve(`h${i}`)
    calls.length = 0
    await r.resolve(`h${UPSTREAM_ADDRESS_ENTRIES}`)
    expect(calls).toEqual([])
    expect(await r.resolve('h0')).toBe('10.0.0.2')
    expect(calls).toEqual(['h0'])
  })
})
