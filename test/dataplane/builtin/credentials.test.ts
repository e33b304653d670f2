import { describe, expect, it } from 'vitest'
import { buildCredentials, SessionCache } from '../../../src/dataplane/builtin/credentials.js'
import { sharedTestPki } from '../../fixtures/pki.js'

describe('SessionCache', () => {
  it('evicts the least recently stored entry beyond its bound', () => {
    const cache = new SessionCache(2)
    cache.set('a', Buffer.from('1'))
    cache.set('b', Buffer.from('2'))
    cache.set('a', Buffer.from('3')) // refresh: b is now the oldest
    cache.set('c', Buffer.from('4'))
    expect(cache.size).toBe(2)
    expect(cache.get('b')).toBeUndefined()
    expect(cache.get('a')?.toString()).toBe('3')
    expect(cache.get('c')?.toString()).toBe('4')
    cache.delete('a')
    expect(cache.get('a')).toBeUndefined()
  })
})

describe('buildCredentials', () => {
  it('builds contexts and describes the leaf', async () => {
    const pki = await sharedTestPki()
    const creds = buildCredentials(pki.material(await pki.issue({ dns: ['a.mesh'], ip: ['10.0.0.1'] })), 3, {
      serverListeners: ['ingress', 'ingress-no-client-auth'],
    })
    expect(creds.generation).toBe(3)
    expect(creds.sessions.size).toBe(0)
    // One server context per terminating listener (their own session contexts and ticket keys).
    expect([...creds.servers.keys()]).toEqual(['ingress', 'ingress-no-client-auth'])
    expect(creds.servers.get('ingress')).not.toBe(creds.servers.get('ingress-no-client-auth'))
    expect(creds.servers.get('ingress')).not.toBe(creds.client)
  })
})
