// MESH_TRACE=dataplane: the builtin data plane logs each connection's decisions at
// trace level under component "dataplane", tied together by `conn`.

import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createRootLogger } from '../../../src/logger.js'
import { BuiltinDataPlane } from '../../../src/dataplane/builtin/index.js'
import { sharedTestPki, type TestLeaf, type TestPki } from '../../fixtures/pki.js'
import { logSink } from '../../support.js'
import { connectClient, egressListener, privileges, spec, startUpstream, until } from '../harness.js'

let pki: TestPki
let serverLeaf: TestLeaf
let clientLeaf: TestLeaf
beforeAll(async () => {
  pki = await sharedTestPki('mesh')
  serverLeaf = await pki.issue({ dns: ['b.mesh'] })
  clientLeaf = await pki.issue({ dns: ['a.mesh'] })
})

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function oneConnection(trace: string | undefined): Promise<Record<string, unknown>[]> {
  const u = await startUpstream(pki, serverLeaf)
  cleanup.push(() => u.close())
  const sink = logSink()
  const log = createRootLogger({ destination: sink, ...(trace !== undefined ? { trace } : {}) })
  const dp = new BuiltinDataPlane(spec([egressListener('b', '127.0.0.2', { host: '127.0.0.1', port: u.port }, 'b.mesh')]), { log, ...privileges })
  cleanup.push(() => dp.destroy())
  dp.setCredentials(pki.material(clientLeaf))
  await dp.start()
  const { address, port } = dp.addresses()['b']!
  const c = connectClient(address, port)
  c.socket.end('hello')
  expect(await c.ended).toBe(true)
  await until(() => dp.stats().connectionsActive === 0)
  return sink.records
}

describe('tracing', () => {
  it('with MESH_TRACE=dataplane: accept, handshake, close of one connection, all under component dataplane', async () => {
    const records = (await oneConnection('dataplane')).filter((r) => r['conn'] !== undefined)
    expect(records.map((r) => r['msg'])).toEqual(['connection accepted', 'upstream handshake completed', 'connection closed'])
    expect(new Set(records.map((r) => r['component']))).toEqual(new Set(['dataplane']))
    expect(new Set(records.map((r) => r['conn'])).size).toBe(1)
    expect(records[2]).toMatchObject({ level: 'trace', bytes: { in: 5, out: 5 } })
  })

  it('without it: nothing per connection at the default level', async () => {
    expect((await oneConnection(undefined)).filter((r) => r['conn'] !== undefined)).toEqual([])
  })
})
