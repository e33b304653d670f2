// A client of the mesh API. The coordinator's TLS certificate is signed by its root,
// which a pod does not know in advance: a first TLS handshake (no verification, nothing
// sent) fetches the chain, then the gRPC channel trusts exactly that root. Whether the
// root belongs to a genuine coordinator is decided by its evidence (agent side), which
// binds the TLS key seen on the channel; every later reconnection must chain to the
// same root, whose key never leaves the coordinator.

import { X509Certificate } from 'node:crypto'
import { connect as tlsConnect, type DetailedPeerCertificate } from 'node:tls'
import * as grpc from '@grpc/grpc-js'
import { MeshApiError } from './errors.js'
import {
  meshApiClientConstructor,
  REASON_METADATA_KEY,
  type ChallengeRequest,
  type ChallengeResponse,
  type MeshApiClient,
  type NewMeshCertRequest,
  type NewMeshCertResponse,
  type SetManifestRequest,
  type SetManifestResponse,
} from './proto.js'

export const DEFAULT_CALL_TIMEOUT_MS = 10_000

export interface MeshApiConnection extends AsyncDisposable {
  /** The root the coordinator presented in the first handshake (not yet verified). */
  readonly root: X509Certificate
  /** PKIX DER of every distinct TLS server key seen on the channel so far. */
  serverKeys(): readonly Buffer[]
  challenge(req: ChallengeRequest, opts?: CallOpts): Promise<ChallengeResponse>
  newMeshCert(req: NewMeshCertRequest, opts?: CallOpts): Promise<NewMeshCertResponse>
  setManifest(req: SetManifestRequest, opts?: CallOpts): Promise<SetManifestResponse>
  close(): void
}

export interface CallOpts {
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}

function splitAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address)
  if (m === null) throw new MeshApiError('COORDINATOR_BAD_REQUEST', `coordinator address "${address}" is not HOST:PORT`, { address })
  return { host: m[1] ?? m[2]!, port: Number(m[3]) }
}

/** The chain the server sends, leaf first, as far as it goes. */
async function fetchServerChain(address: string, timeoutMs: number, signal?: AbortSignal): Promise<X509Certificate[]> {
  const { host, port } = splitAddress(address)
  return new Promise((resolve, reject) => {
    const onAbort = (): void => fail(signal?.reason)
    const fail = (cause: unknown): void => {
      signal?.removeEventListener('abort', onAbort)
      socket.destroy()
      reject(new MeshApiError('COORDINATOR_UNREACHABLE', `cannot reach the coordinator at ${address}: ${(cause as Error)?.message ?? String(cause)}`, { address }, { cause }))
    }
    // Nothing is sent over this connection; it only shows which root the server claims.
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], servername: 'coordinator', timeout: timeoutMs }, () => {
      const chain: X509Certificate[] = []
      let c: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true)
      const seen = new Set<string>()
      while (c !== undefined && c.raw !== undefined && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256)
        chain.push(new X509Certificate(c.raw))
        c = c.issuerCertificate
      }
      socket.end()
      signal?.removeEventListener('abort', onAbort)
      if (chain.length === 0) fail(new Error('no server certificate'))
      else resolve(chain)
    })
    socket.once('timeout', () => fail(new Error(`TLS handshake timed out after ${timeoutMs} ms`)))
    socket.once('error', fail)
    if (signal?.aborted) fail(signal.reason)
    else signal?.addEventListener('abort', onAbort, { once: true })
  })
}

function callError(err: grpc.ServiceError, address: string, method: string): MeshApiError {
  const reason = err.metadata?.get(REASON_METADATA_KEY)[0]
  const details = { address, method, status: grpc.status[err.code] ?? err.code, reason: reason === undefined ? undefined : String(reason) }
  if (reason !== undefined) return new MeshApiError('COORDINATOR_REFUSED', `${method}: ${err.details}`, details, { cause: err })
  return new MeshApiError('COORDINATOR_UNREACHABLE', `${method} to ${address}: ${err.details || err.message}`, details, { cause: err })
}

export async function connectMeshApi(address: string, opts: CallOpts = {}): Promise<MeshApiConnection> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS
  const chain = await fetchServerChain(address, timeoutMs, opts.signal)
  // The self-signed end of the chain; a server that sends only its leaf cannot be anchored.
  const root = chain.find((c) => c.checkIssued(c) && c.verify(c.publicKey))
  if (root === undefined) {
    throw new MeshApiError('COORDINATOR_UNTRUSTED', 'the coordinator sent no self-signed root with its TLS certificate', {
      address,
      chain: chain.map((c) => c.subject),
    })
  }
  const keys: Buffer[] = []
  const creds = grpc.credentials.createSsl(Buffer.from(root.toString()), null, null, {
    // Names are not what identifies the coordinator (its evidence is); OpenSSL has
    // already checked that the certificate chains to `root`. Record the key it proved.
    checkServerIdentity: (_host, cert) => {
      const spki = new X509Certificate(cert.raw).publicKey.export({ type: 'spki', format: 'der' })
      if (!keys.some((k) => k.equals(spki))) keys.push(spki)
      return undefined
    },
  })
  const Client = meshApiClientConstructor()
  const client: MeshApiClient = new Client(address, creds, { 'grpc.ssl_target_name_override': 'coordinator', 'grpc.max_receive_message_length': 1 << 20 })

  const call = <Req, Res>(
    method: 'Challenge' | 'NewMeshCert' | 'SetManifest',
    req: Req,
    o: CallOpts = {},
  ): Promise<Res> =>
    new Promise<Res>((resolve, reject) => {
      const signal = o.signal ?? opts.signal
      if (signal?.aborted) {
        reject(new MeshApiError('COORDINATOR_UNREACHABLE', `${method} aborted`, { address, method }, { cause: signal.reason }))
        return
      }
      const deadline = new Date(Date.now() + (o.timeoutMs ?? timeoutMs))
      const fn = client[method].bind(client) as unknown as (
        r: Req,
        md: grpc.Metadata,
        co: grpc.CallOptions,
        cb: (err: grpc.ServiceError | null, res?: Res) => void,
      ) => grpc.ClientUnaryCall
      const c = fn(req, new grpc.Metadata(), { deadline }, (err, res) => {
        signal?.removeEventListener('abort', onAbort)
        if (err !== null) reject(callError(err, address, method))
        else resolve(res as Res)
      })
      const onAbort = (): void => c.cancel()
      signal?.addEventListener('abort', onAbort, { once: true })
    })

  const close = (): void => client.close()
  return {
    root,
    serverKeys: () => keys,
    challenge: (req, o) => call<ChallengeRequest, ChallengeResponse>('Challenge', req, o),
    newMeshCert: (req, o) => call<NewMeshCertRequest, NewMeshCertResponse>('NewMeshCert', req, o),
    setManifest: (req, o) => call<SetManifestRequest, SetManifestResponse>('SetManifest', req, o),
    close,
    async [Symbol.asyncDispose]() {
      close()
    },
  }
}
