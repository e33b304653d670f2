// The harness itself: addresses usable at once, exec/spawn in the right namespace,
// and nothing left behind (cleanup, cleanupStale).

import { once } from 'node:events'
import { afterAll, expect, it } from 'vitest'
import { cleanupStale, createTopology, requireNetns, run } from './netns.js'

const describeNetns = requireNetns()
const PREFIX = 'pmnh'

const ours = async (): Promise<string[]> =>
  (await run('ip', ['netns', 'list'])).stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${PREFIX}-`))

describeNetns('netns harness', () => {
  afterAll(() => cleanupStale(PREFIX))

  it('builds N nodes on a bridge in its own namespace, v4 and v6 usable at once, and cleans up everything', async () => {
    const topo = await createTopology({ prefix: PREFIX, nodes: ['a', 'b', 'c'], subnet: 9 })
    expect((await ours()).sort()).toEqual([`${PREFIX}-a`, `${PREFIX}-b`, `${PREFIX}-br`, `${PREFIX}-c`])
    expect(topo.node('c')).toMatchObject({ ns: `${PREFIX}-c`, ipv4: '10.9.0.3', ipv6: 'fd00:9::3', ifname: 'eth0' })
    // the bridge and its ports live in their own namespace, not the root one
    expect((await run('ip', ['-n', topo.bridgeNs, 'link', 'show', 'p-a'])).stdout).toContain('master br0')
    expect((await run('ip', ['link', 'show', 'p-a'])).code).not.toBe(0)
    const addrs = await topo.exec('a', 'ip', ['-6', 'addr', 'show', 'dev', 'eth0'])
    expect(addrs.stdout).toContain('fd00:9::1/64')
    expect(addrs.stdout).not.toContain('tentative')

    const server = topo.spawn('c', process.execPath, [
      '-e',
      `require('node:net').createServer((s) => s.end('hi')).listen({ port: 7000, host: '::', ipv6Only: false }, () => console.log('up'))`,
    ])
    await once(server.stdout!, 'data')
    const client = (host: string) =>
      `const s = require('node:net').connect({ host: '${host}', port: 7000 }); s.on('data', (d) => { process.stdout.write(d); process.exit(0) }); s.on('error', (e) => { console.log(e.code); process.exit(1) })`
    const v4 = await topo.exec('a', process.execPath, ['-e', client('10.9.0.3')], { timeoutMs: 5000 })
    const v6 = await topo.exec('b', process.execPath, ['-e', client('fd00:9::3')], { timeoutMs: 5000 })
    expect([v4.stdout, v6.stdout]).toEqual(['hi', 'hi'])

    await topo.cleanup()
    await topo.cleanup() // idempotent
    expect(await ours()).toEqual([])
    expect(server.exitCode !== null || server.signalCode !== null).toBe(true)
  })

  it('exec reports exit codes and times out', async () => {
    await using topo = await createTopology({ prefix: PREFIX, nodes: ['a'] })
    expect(await topo.exec('a', 'sh', ['-c', 'exit 3'])).toMatchObject({ code: 3 })
    expect(await topo.exec('a', 'sleep', ['5'], { timeoutMs: 200 })).toMatchObject({ code: 124 })
    expect(() => topo.node('zz')).toThrow(/no node "zz"/)
  })

  it('cleanupStale removes leftovers of a crashed run, processes included', async () => {
    expect((await run('ip', ['netns', 'add', `${PREFIX}-x`])).code).toBe(0)
    const { spawn } = await import('node:child_process')
    const orphan = spawn('ip', ['netns', 'exec', `${PREFIX}-x`, 'sleep', '30'], { stdio: 'ignore' })
    const exited = once(orphan, 'exit')
    await new Promise((r) => setTimeout(r, 100))
    await cleanupStale(PREFIX)
    expect(await ours()).toEqual([])
    await exited
  })

  it('rejects prefixes and node names that could collide or overflow interface names', async () => {
    await expect(createTopology({ prefix: 'Bad-prefix', nodes: ['a'] })).rejects.toThrow(/prefix/)
    await expect(createTopology({ prefix: PREFIX, nodes: ['br'] })).rejects.toThrow(/node name/)
    await expect(createTopology({ prefix: PREFIX, nodes: ['a', 'a'] })).rejects.toThrow(/duplicate/)
    expect(await ours()).toEqual([])
  })
})
