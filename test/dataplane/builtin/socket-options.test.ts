import { execFileSync } from 'node:child_process'
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { MESH_SOCKET_MARK } from '../../../src/config/types.js'
import { createMarkedSocket, setServerTransparent, setTransparent } from '../../../src/dataplane/builtin/socket-options.js'
import { thrown } from '../../support.js'
import { isRoot, itAsRoot } from '../harness.js'

describe('setTransparent', () => {
  it.each([4, 6] as const)('reports errno as a typed error (IPv%i, bad fd)', (family) => {
    expect(thrown(() => setTransparent(-1, family))).toMatchObject({
      code: 'DATAPLANE_SOCKOPT',
      details: { fd: -1, option: family === 4 ? 'IP_TRANSPARENT' : 'IPV6_TRANSPARENT', errno: 'EBADF' },
    })
  })

  it('refuses a server that is not listening', () => {
    expect(thrown(() => setServerTransparent(net.createServer(), 4))).toMatchObject({ code: 'DATAPLANE_SOCKOPT' })
  })

  itAsRoot('makes a listening dual-stack server transparent', async () => {
    const server = net.createServer()
    await new Promise<void>((r) => server.listen({ host: '::', port: 0, ipv6Only: false }, r))
    try {
      expect(() => setServerTransparent(server, 6)).not.toThrow()
    } finally {
      server.close()
    }
  })
})

describe('createMarkedSocket', () => {
  it.runIf(!isRoot)('as non-root only (root has the capability): fails with EPERM without CAP_NET_ADMIN', () => {
    expect(thrown(() => createMarkedSocket(4, MESH_SOCKET_MARK))).toMatchObject({
      code: 'DATAPLANE_SOCKOPT',
      details: { option: 'SO_MARK', errno: 'EPERM' },
    })
  })

  for (const [family, host] of [
    [4, '127.0.0.1'],
    [6, '::1'],
  ] as const) itAsRoot(`connects with the mark set (IPv${family})`, async () => {
    const server = net.createServer((s) => s.end('ok'))
    await new Promise<void>((r) => server.listen(0, host, r))
    const port = (server.address() as net.AddressInfo).port
    const sock = createMarkedSocket(family, MESH_SOCKET_MARK)
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject)
        sock.connect(port, host, () => resolve())
      })
      // The kernel's view of the connected socket carries the mark.
      const ss = execFileSync('ss', ['-tnHe', 'dst', `[${host}]:${port}`, 'sport', `= :${sock.localPort}`]).toString()
      expect(ss).toContain(`fwmark:0x${MESH_SOCKET_MARK.toString(16)}`)
      const data = await new Promise<string>((r) => sock.once('data', (b: Buffer) => r(b.toString())))
      expect(data).toBe('ok')
    } finally {
      sock.destroy()
      server.close()
    }
  })
})
