import { randomBytes, X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import http2 from 'node:http2'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bindReportData } from '../../src/attestation/index.js'
import { MAX_REQUEST_BYTES, MAX_STREAMS_PER_CONNECTION, parseManifest, STATE_FILE } from '../../src/coordinator/index.js'
import { connectMeshApi, evidenceToWire } from '../../src/meshapi/index.js'
import { generateKeyPair } from '../../src/pki/index.js'
import { manualClock, rejected } from '../support.js'
import { HOST_A, manifestText, removeState, simulated, startTestCoordinator, type TestCoordinator } from './harness.js'

describe('the coordinator over gRPC', () => {
  let coord: TestCoordinator
  beforeAll(async () => {
    coord = await startTestCoordinator()
  })
  afterAll(async () => {
    await coord.close()
    await removeState(coord.stateDir)
  })

  const honest = async (conn: Awaited<ReturnType<typeof connectMeshApi>>) => {
    const ch = await conn.challenge({ ClientNonce: randomBytes(32) })
    const kp = await generateKeyPair()
    const spki = new Uint8Array(await globalThis.crypto.subtle.exportKey('spki', kp.keys.publicKey))
    const ev = await (await simulated(HOST_A)).getEvidence(bindReportData(spki, ch.Nonce))
    return { Nonce: ch.Nonce, PublicKey: spki, Evidence: evidenceToWire(ev) }
  }

  // The mesh API answers before anyone is authenticated. Measured before the bounds: one
  // TLS connection with 500 streams, each announcing a 1,000,000-byte message and
  // sending ~980 KB of it, grew the coordinator from 85 MB to 648 MB, kept indefinitely.
  it('one connection holds at most a few requests in flight, each small; an oversized one is refused at once', async () => {
    const session = http2.connect(`https://${coord.address}`, { rejectUnauthorized: false, servername: 'coordinator' })
    session.on('error', () => {})
    try {
      await once(session, 'remoteSettings')
      expect(session.remoteSettings.maxConcurrentStreams).toBe(MAX_STREAMS_PER_CONNECTION)
      expect(MAX_STREAMS_PER_CONNECTION * MAX_REQUEST_BYTES).toBeLessThanOrEqual(4 << 20)
      // A request whose length prefix announces more than the bound: RESOURCE_EXHAUSTED
      // without waiting for its bytes.
      const st = session.request({ ':method': 'POST', ':path': '/meshapi.MeshAPI/Challenge', 'content-type': 'application/grpc', te: 'trailers' })
      st.on('error', () => {})
      const prefix = Buffer.alloc(5)
      prefix.writeUInt32BE(MAX_REQUEST_BYTES + 1, 1)
      st.write(prefix)
      const status = await Promise.race([
        new Promise<string>((resolve) => {
          st.on('response', (h) => h['grpc-status'] !== undefined && resolve(String(h['grpc-status'])))
          st.on('trailers', (h) => resolve(String(h['grpc-status'])))
        }),
        new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 3 s'), 3_000)),
      ])
      expect(status).toBe(String(8)) // RESOURCE_EXHAUSTED
    } finally {
      session.destroy()
    }
    // Meanwhile an honest pod is served.
    const conn = await connectMeshApi(coord.address)
    try {
      expect((await conn.challenge({ ClientNonce: randomBytes(32) })).Nonce).toHaveLength(32)
    } finally {
      conn.close()
    }
  })

  it('a connection that keeps a request unfinished is closed after its maximum age and grace', async () => {
    const short = await startTestCoordinator({ connectionAgeMs: 300, connectionAgeGraceMs: 300 })
    const session = http2.connect(`https://${short.address}`, { rejectUnauthorized: false, servername: 'coordinator' })
    session.on('error', () => {})
    try {
      await once(session, 'remoteSettings')
      const st = session.request({ ':method': 'POST', ':path': '/meshapi.MeshAPI/Challenge', 'content-type': 'application/grpc', te: 'trailers' })
      st.on('error', () => {})
      const prefix = Buffer.alloc(5)
      prefix.writeUInt32BE(1000, 1)
      st.write(Buffer.concat([prefix, Buffer.alloc(500)])) // half of the announced message, never the rest
      const closed = await Promise.race([once(session, 'close').then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open after 3 s'), 3_000))])
      expect(closed).toBe('closed')
    } finally {
      session.destroy()
      await short.close()
      await removeState(short.stateDir)
    }
  })

  it('serves TLS with a certificate from its root, and the root in Challenge is that root', async () => {
    const conn = await connectMeshApi(coord.address)
    try {
      const ch = await conn.challenge({ ClientNonce: randomBytes(32) })
      expect(new X509Certificate(Buffer.from(ch.RootCACert)).raw.equals(conn.root.raw)).toBe(true)
      expect(conn.serverKeys()).toHaveLength(1)
    } finally {
      conn.close()
    }
  })

  it('a replayed nonce is UNAUTHENTICATED with reason COORDINATOR_NONCE_REPLAYED', async () => {
    const conn = await connectMeshApi(coord.address)
    try {
      const req = await honest(conn)
      await conn.newMeshCert(req)
      expect(await rejected(conn.newMeshCert(req))).toMatchObject({
        code: 'COORDINATOR_REFUSED',
        details: { status: 'UNAUTHENTICATED', reason: 'COORDINATOR_NONCE_REPLAYED' },
      })
    } finally {
      conn.close()
    }
  })

  it('refused calls are logged a bounded number of times per code, then summed up; each caller still gets its reason', async () => {
    const clock = manualClock()
    const limited = await startTestCoordinator({ refusalLog: { burst: 2, intervalMs: 60_000 }, clock })
    const conn = await connectMeshApi(limited.address)
    try {
      for (let i = 0; i < 5; i++) {
        const req = await honest(conn)
        expect(await rejected(conn.newMeshCert({ ...req, Nonce: randomBytes(32) }))).toMatchObject({ code: 'COORDINATOR_REFUSED' })
      }
      const refusedLines = limited.records.filter((r) => String(r['msg']).startsWith('NewMeshCert refused'))
      expect(refusedLines).toHaveLength(2)
      const code = refusedLines[0]!['code']
      clock.advance(60_000)
      expect(limited.records.filter((r) => r['suppressed'] !== undefined)).toEqual([
        expect.objectContaining({ level: 40, code, suppressed: 3, intervalMs: 60_000 }),
      ])
    } finally {
      conn.close()
      await limited.close()
      await removeState(limited.stateDir)
    }
  })

  it('evidence bound to another key is UNAUTHENTICATED with reason COORDINATOR_BINDING_MISMATCH', async () => {
    const conn = await connectMeshApi(coord.address)
    try {
      const req = await honest(conn)
      const other = await generateKeyPair()
      const otherSpki = new Uint8Array(await globalThis.crypto.subtle.exportKey('spki', other.keys.publicKey))
      expect(await rejected(conn.newMeshCert({ ...req, PublicKey: otherSpki }))).toMatchObject({
        details: { status: 'UNAUTHENTICATED', reason: 'COORDINATOR_BINDING_MISMATCH' },
      })
    } finally {
      conn.close()
    }
  })

  it('a restart keeps the root and the manifest; nonces of the previous run are unknown', async () => {
    const conn = await connectMeshApi(coord.address)
    const req = await honest(conn)
    conn.close()
    const before = coord.running.rootFingerprint
    coord = await coord.restart({ manifest: parseManifest(manifestText({}, { ['01'.repeat(32)]: { sans: ['ignored'] } })) })
    expect(coord.running.created).toBe(false)
    expect(coord.running.rootFingerprint).toBe(before)
    // The persisted manifest wins over a different --manifest on restart.
    expect(coord.running.state.manifest.policies.has(HOST_A)).toBe(true)
    expect(coord.records.some((r) => r['msg'] === 'ignoring --manifest: the persisted manifest wins; change it with SetManifest')).toBe(true)
    const conn2 = await connectMeshApi(coord.address)
    try {
      expect(await rejected(conn2.newMeshCert(req))).toMatchObject({ details: { reason: 'COORDINATOR_NONCE_UNKNOWN' } })
    } finally {
      conn2.close()
    }
  })

  it('a state file that is not ours stops the start with COORDINATOR_STATE_INVALID', async () => {
    const bad = await startTestCoordinator()
    await bad.close()
    await writeFile(join(bad.stateDir, STATE_FILE), '{"version":1}')
    expect(await rejected(bad.restart())).toMatchObject({ code: 'COORDINATOR_STATE_INVALID' })
    await removeState(bad.stateDir)
  })
})
