// The coordinator process: state (created or restored), its TLS identity, and the
// mesh API served over gRPC with TLS. Errors become gRPC statuses with our code in
// trailing metadata (`podvm-mesh-reason`), so clients can tell why without parsing text.

import { createHash, createPublicKey } from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import type { Logger } from 'pino'
import type { EvidenceProvider } from '../attestation/index.js'
import { isMeshError } from '../errors.js'
import { DEFAULT_LOG_LIMIT, LogLimiter, type Clock, type LogLimitOptions } from '../log-limit.js'
import { generateKeyPair, type Curve } from '../pki/index.js'
import { CoordinatorCa, DEFAULT_LEAF_LIFETIME_MS } from './ca.js'
import { meshApiService, REASON_METADATA_KEY, type MeshApiCode } from '../meshapi/index.js'
import { CoordinatorError, type CoordinatorCode } from './errors.js'
import type { Manifest } from './manifest.js'
import { MeshApi } from './mesh-api.js'
import { loadState, normalizePublicKeyPem, saveState, type CoordinatorState } from './state.js'
import { chooseSealer, type StateSealer } from './state-sealing.js'

/** Contrast's mesh API port. */
export const MESH_API_PORT = 7777

/**
 * Bounds on what an unauthenticated client can make the coordinator hold: the mesh API
 * answers before anyone is authenticated, and gRPC buffers a request whole before the
 * handler runs. The largest honest request is SetManifest (the manifest's text, signed);
 * NewMeshCert carries a key and evidence (SNP report and certificates, or a TDX quote
 * with its PCK chain: under 16 KiB). A pod makes one call at a time.
 */
export const MAX_REQUEST_BYTES = 256 * 1024
export const MAX_STREAMS_PER_CONNECTION = 8
/**
 * How long one connection may live (then GOAWAY; calls in flight get the grace, then
 * it is closed), so a request that never finishes holds its buffer for a bounded time.
 * A pod's attestation (Challenge, its own evidence, NewMeshCert) takes seconds, and
 * gRPC clients reconnect on GOAWAY by themselves.
 */
export const MAX_CONNECTION_AGE_MS = 60_000
export const CONNECTION_AGE_GRACE_MS = 10_000

const STATUS: Record<CoordinatorCode | MeshApiCode, grpc.status> = {
  COORDINATOR_MANIFEST_INVALID: grpc.status.INVALID_ARGUMENT,
  COORDINATOR_STATE_INVALID: grpc.status.INTERNAL,
  COORDINATOR_SEALING_KEY_UNAVAILABLE: grpc.status.INTERNAL,
  COORDINATOR_BAD_REQUEST: grpc.status.INVALID_ARGUMENT,
  COORDINATOR_NONCE_UNKNOWN: grpc.status.UNAUTHENTICATED,
  COORDINATOR_NONCE_EXPIRED: grpc.status.UNAUTHENTICATED,
  COORDINATOR_NONCE_REPLAYED: grpc.status.UNAUTHENTICATED,
  COORDINATOR_EVIDENCE_REJECTED: grpc.status.UNAUTHENTICATED,
  COORDINATOR_SIMULATED_REFUSED: grpc.status.UNAUTHENTICATED,
  COORDINATOR_BINDING_MISMATCH: grpc.status.UNAUTHENTICATED,
  COORDINATOR_KEY_REFUSED: grpc.status.PERMISSION_DENIED,
  COORDINATOR_TEE_NOT_ADMITTED: grpc.status.PERMISSION_DENIED,
  COORDINATOR_REFERENCE_MISMATCH: grpc.status.PERMISSION_DENIED,
  COORDINATOR_POLICY_NOT_FOUND: grpc.status.PERMISSION_DENIED,
  COORDINATOR_UPDATE_UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  COORDINATOR_BUSY: grpc.status.RESOURCE_EXHAUSTED,
  COORDINATOR_EVIDENCE_UNAVAILABLE: grpc.status.UNAVAILABLE,
  COORDINATOR_UNTRUSTED: grpc.status.INTERNAL,
  COORDINATOR_UNREACHABLE: grpc.status.UNAVAILABLE,
  COORDINATOR_REFUSED: grpc.status.INTERNAL,
}

export interface CoordinatorOptions {
  readonly stateDir: string
  /** Seals the state at rest; default chooseSealer (SNP derived key, --state-key, or simulated). */
  readonly sealer?: StateSealer
  /** A 32-byte key file for the state (where the TEE derives none, e.g. TDX). */
  readonly stateKeyPath?: string | undefined
  /** Required on first start; afterwards the persisted manifest wins (updates go through SetManifest). */
  readonly manifest?: Manifest
  /** SPKI PEM that signs SetManifest; fixed at first start. */
  readonly updateKeyPem?: string
  readonly provider: EvidenceProvider
  readonly log: Logger
  /** host:port; default 0.0.0.0:7777. */
  readonly listen?: string
  readonly curve?: Curve
  readonly leafLifetimeMs?: number
  readonly rotationDelayMs?: number
  readonly nonceTtlMs?: number
  /** Default MAX_CONNECTION_AGE_MS and CONNECTION_AGE_GRACE_MS. */
  readonly connectionAgeMs?: number
  readonly connectionAgeGraceMs?: number
  /** Rate limit of the refused-call warnings, per error code (anyone can cause them); default DEFAULT_LOG_LIMIT. */
  readonly refusalLog?: LogLimitOptions
  /** Time for that rate limit; tests inject one. */
  readonly clock?: Clock
}

export interface RunningCoordinator extends AsyncDisposable {
  readonly port: number
  readonly api: MeshApi
  readonly state: CoordinatorState
  /** SHA-256 of the root CA certificate (DER), hex: what pods may pin. */
  readonly rootFingerprint: string
  /** Whether this start created the state (first start) or restored it. */
  readonly created: boolean
  close(): Promise<void>
}

export async function openState(opts: CoordinatorOptions, now: number): Promise<{ state: CoordinatorState; created: boolean; sealer: StateSealer }> {
  const log = opts.log.child({ component: 'coordinator' })
  const leafLifetimeMs = opts.leafLifetimeMs ?? DEFAULT_LEAF_LIFETIME_MS
  const sealer = opts.sealer ?? (await chooseSealer({ stateDir: opts.stateDir, stateKeyPath: opts.stateKeyPath, evidence: opts.provider.kind }))
  if (sealer.kind === 'simulated') log.warn({ sealer: sealer.kind }, 'state sealed with a key stored next to it (simulated TEE): it detects corruption, it keeps nothing secret')
  const restored = await loadState(opts.stateDir, sealer)
  if (restored !== undefined) {
    if (opts.manifest !== undefined && opts.manifest.hash !== restored.manifest.hash) {
      log.warn({ given: opts.manifest.hash, persisted: restored.manifest.hash }, 'ignoring --manifest: the persisted manifest wins; change it with SetManifest')
    }
    if (opts.updateKeyPem !== undefined) {
      const given = normalizePublicKeyPem(opts.updateKeyPem, 'update key')
      if (restored.updateKeyPem !== given) {
        throw new CoordinatorError('COORDINATOR_STATE_INVALID', 'the update key is fixed at first start and differs from the persisted one', {
          field: 'updateKey',
        })
      }
    }
    restored.ca.noteLifetime(leafLifetimeMs)
    // Always rewritten: seals a plaintext file of an earlier version, and prunes.
    restored.ca.prune(now)
    await saveState(opts.stateDir, restored, sealer)
    return { state: restored, created: false, sealer }
  }
  if (opts.manifest === undefined) {
    throw new CoordinatorError('COORDINATOR_MANIFEST_INVALID', `no state in ${opts.stateDir} and no --manifest to start from`, { stateDir: opts.stateDir })
  }
  const ca = await CoordinatorCa.create({ curve: opts.curve ?? 'P-256', now, leafLifetimeMs })
  const state: CoordinatorState = {
    ca,
    manifest: opts.manifest,
    manifestGeneration: 0,
    updateKeyPem: opts.updateKeyPem === undefined ? undefined : normalizePublicKeyPem(opts.updateKeyPem, 'update key'),
  }
  await saveState(opts.stateDir, state, sealer)
  return { state, created: true, sealer }
}

function toStatus(err: unknown, log: Logger, refusals: LogLimiter, method: string): grpc.ServiceError {
  const md = new grpc.Metadata()
  if (isMeshError(err) && Object.hasOwn(STATUS, err.code)) {
    const code = err.code as keyof typeof STATUS
    md.set(REASON_METADATA_KEY, code)
    if (refusals.allow(err.code)) log.warn({ method, code: err.code, details: err.details }, `${method} refused: ${err.message}`)
    return Object.assign(new Error(err.message), { code: STATUS[code], details: err.message, metadata: md })
  }
  log.error({ err, method }, `${method} failed`)
  md.set(REASON_METADATA_KEY, isMeshError(err) ? err.code : 'INTERNAL')
  return Object.assign(new Error('internal error'), { code: grpc.status.INTERNAL, details: 'internal error', metadata: md })
}

function unary<Req, Res>(log: Logger, refusals: LogLimiter, name: string, fn: (req: Req, peer: string) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request, call.getPeer()).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toStatus(err, log, refusals, name)),
    )
  }
}

/** Starts the coordinator: state, TLS identity, gRPC server. */
export async function startCoordinator(opts: CoordinatorOptions): Promise<RunningCoordinator> {
  const log = opts.log.child({ component: 'coordinator' })
  const now = Date.now()
  const { state, created, sealer } = await openState(opts, now)
  const leafLifetimeMs = opts.leafLifetimeMs ?? DEFAULT_LEAF_LIFETIME_MS

  // A fresh TLS key per start, certified by the root: pods pin the root (or the policy
  // hash) and check that the evidence binds this key.
  const tlsKey = await generateKeyPair('P-256')
  const tlsCertPem = await state.ca.issueServerCertificate({ publicKey: tlsKey.keys.publicKey, sans: ['coordinator'], now })
  const tlsPublicKeyDer = createPublicKey(tlsCertPem).export({ type: 'spki', format: 'der' })

  const api = new MeshApi({
    state,
    persist: (s) => saveState(opts.stateDir, s, sealer),
    log: opts.log,
    provider: opts.provider,
    tlsPublicKeyDer,
    leafLifetimeMs,
    rotationDelayMs: opts.rotationDelayMs,
    nonceTtlMs: opts.nonceTtlMs,
  })
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
    'grpc.max_concurrent_streams': MAX_STREAMS_PER_CONNECTION,
    'grpc.max_connection_age_ms': opts.connectionAgeMs ?? MAX_CONNECTION_AGE_MS,
    'grpc.max_connection_age_grace_ms': opts.connectionAgeGraceMs ?? CONNECTION_AGE_GRACE_MS,
  })
  // Refusals are what an unauthenticated caller can produce at will: the counters
  // (reason metadata) see every one, the log a bounded number per code.
  const refusals = new LogLimiter(
    (code, suppressed, intervalMs) => log.warn({ code, suppressed, intervalMs }, `${suppressed} more refused calls (${code}) not logged`),
    opts.refusalLog ?? DEFAULT_LOG_LIMIT,
    opts.clock,
  )
  server.addService(meshApiService() as unknown as grpc.ServiceDefinition, {
    NewMeshCert: unary(log, refusals, 'NewMeshCert', (req, peer) => api.newMeshCert(req as never, peer)),
    Challenge: unary(log, refusals, 'Challenge', (req, peer) => api.challenge(req as never, peer)),
    SetManifest: unary(log, refusals, 'SetManifest', (req) => api.setManifest(req as never)),
  })
  const creds = grpc.ServerCredentials.createSsl(
    null,
    [{ cert_chain: Buffer.from(tlsCertPem + state.ca.root.certificatePem), private_key: Buffer.from(tlsKey.privateKeyPem) }],
    false,
  )
  const listen = opts.listen ?? `0.0.0.0:${MESH_API_PORT}`
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, creds, (err, p) => (err === null ? resolve(p) : reject(err)))
  })
  const rootFingerprint = createHash('sha256').update(Buffer.from(state.ca.root.certificate.rawData)).digest('hex')
  log.info(
    {
      listen,
      port,
      created,
      rootFingerprint,
      manifest: state.manifest.hash,
      policies: state.manifest.policies.size,
      generations: state.ca.generations.map((g) => ({ id: g.id, activeFrom: new Date(g.activeFrom).toISOString() })),
      leafLifetimeMs,
      evidence: opts.provider.kind,
      stateSealer: sealer.kind,
    },
    'coordinator listening',
  )
  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      // Unary calls finish quickly; a stuck one is cut after a grace period.
      const t = setTimeout(() => server.forceShutdown(), 2_000)
      server.tryShutdown(() => {
        clearTimeout(t)
        refusals.flush()
        resolve()
      })
    })
    return closing
  }
  return { port, api, state, rootFingerprint, created, close, [Symbol.asyncDispose]: close }
}
