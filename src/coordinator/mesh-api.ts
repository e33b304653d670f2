// The mesh API's logic, apart from gRPC (server.ts adapts it): Challenge hands out
// single-use nonces with the coordinator's own evidence; NewMeshCert checks a pod's
// evidence, binding, nonce and policy, then issues; SetManifest rotates the mesh CA.

import { createHash, createPublicKey, randomBytes, verify as cryptoVerify, webcrypto } from 'node:crypto'
import { isIP } from 'node:net'
import type { Logger } from 'pino'
import { bindReportData, type EvidenceProvider } from '../attestation/index.js'
import {
  checkEvidence,
  evidenceToWire,
  wireToEvidence,
  type EvidenceCheckOptions,
  type ChallengeRequest,
  type ChallengeResponse,
  type NewMeshCertRequest,
  type NewMeshCertResponse,
  type SetManifestRequest,
  type SetManifestResponse,
} from '../meshapi/index.js'
import type { CoordinatorCa } from './ca.js'
import { CoordinatorError } from './errors.js'
import { lookupPolicy, parseManifest } from './manifest.js'
import type { CoordinatorState } from './state.js'

const crypto = webcrypto as unknown as Crypto

export const DEFAULT_NONCE_TTL_MS = 60_000
export const MAX_OUTSTANDING_NONCES = 10_000
/**
 * Challenge needs no credentials, so without a share per client one of them could hold
 * every nonce and keep all pods from being admitted. A pod asks for one challenge per
 * attempt, with backoff between attempts. A nonce counts until it expires, also when a
 * failed attempt used it (else asking and failing at once would be a loop without a
 * bound on our evidence requests); one that got a certificate stops counting, so pods
 * behind one address (a NAT) are held back only by failures.
 */
export const MAX_OUTSTANDING_PER_PEER = 64
export const NONCE_BYTES = 32
/** Client nonces: long enough to be unpredictable, short enough to bind cheaply. */
const CLIENT_NONCE_MIN = 16
const CLIENT_NONCE_MAX = 64
export const SET_MANIFEST_CONTEXT = 'podvm-mesh SetManifest v2\0'

export interface MeshApiOptions {
  readonly state: CoordinatorState
  /** Persists state after a change (SetManifest). */
  readonly persist: (state: CoordinatorState) => Promise<void>
  readonly log: Logger
  /** Produces the coordinator's own evidence. */
  readonly provider: EvidenceProvider
  /** PKIX DER of the coordinator's TLS key: what its evidence binds. */
  readonly tlsPublicKeyDer: Uint8Array
  readonly leafLifetimeMs: number
  /** Delay between announcing a new mesh CA and issuing from it; default one leaf lifetime. */
  readonly rotationDelayMs?: number
  readonly nonceTtlMs?: number
  readonly maxOutstandingNonces?: number
  /** Outstanding nonces one client address may hold (default MAX_OUTSTANDING_PER_PEER). */
  readonly maxOutstandingPerPeer?: number
  readonly now?: () => number
  /** Test roots in place of AMD's and Intel's (see EvidenceCheckOptions.vendorRoots). */
  readonly vendorRoots?: EvidenceCheckOptions['vendorRoots']
}

interface NonceEntry {
  readonly expiresAt: number
  /** The client's address (peerAddress), or the gRPC peer string when it has none. */
  readonly peer: string
  consumed: boolean
  /** Still counted in #perPeer. */
  counted: boolean
}

export class MeshApi {
  readonly #o: MeshApiOptions
  readonly #log: Logger
  readonly #nonces = new Map<string, NonceEntry>()
  /** Outstanding nonces per NonceEntry.peer. */
  readonly #perPeer = new Map<string, number>()
  #updating: Promise<unknown> = Promise.resolve()

  constructor(opts: MeshApiOptions) {
    this.#o = opts
    this.#log = opts.log.child({ component: 'coordinator' })
  }

  get ca(): CoordinatorCa {
    return this.#o.state.ca
  }

  #now(): number {
    return this.#o.now?.() ?? Date.now()
  }

  #sweep(now: number): void {
    for (const [k, v] of this.#nonces) {
      if (v.expiresAt > now) continue
      this.#nonces.delete(k)
      this.#uncount(v)
    }
  }

  #uncount(entry: NonceEntry): void {
    if (!entry.counted) return
    entry.counted = false
    const left = (this.#perPeer.get(entry.peer) ?? 1) - 1
    if (left > 0) this.#perPeer.set(entry.peer, left)
    else this.#perPeer.delete(entry.peer)
  }

  /** `peer`: the gRPC peer (`ipv4:1.2.3.4:5`); its address is the unit of the per-client share. */
  async challenge(req: ChallengeRequest, peer?: string): Promise<ChallengeResponse> {
    const clientNonce = req.ClientNonce ?? new Uint8Array(0)
    if (clientNonce.byteLength < CLIENT_NONCE_MIN || clientNonce.byteLength > CLIENT_NONCE_MAX) {
      throw new CoordinatorError('COORDINATOR_BAD_REQUEST', `ClientNonce must be ${CLIENT_NONCE_MIN}-${CLIENT_NONCE_MAX} B, got ${clientNonce.byteLength}`, {
        field: 'ClientNonce',
        length: clientNonce.byteLength,
      })
    }
    const now = this.#now()
    this.#sweep(now)
    const max = this.#o.maxOutstandingNonces ?? MAX_OUTSTANDING_NONCES
    if (this.#nonces.size >= max) {
      throw new CoordinatorError('COORDINATOR_BUSY', `${this.#nonces.size} challenges outstanding (max ${max})`, { outstanding: this.#nonces.size, max })
    }
    const client = peerAddress(peer) ?? peer ?? 'unknown'
    const mine = this.#perPeer.get(client) ?? 0
    const maxMine = this.#o.maxOutstandingPerPeer ?? MAX_OUTSTANDING_PER_PEER
    if (mine >= maxMine) {
      throw new CoordinatorError('COORDINATOR_BUSY', `${mine} challenges outstanding for ${client} (max ${maxMine} per client)`, {
        peer: client,
        outstanding: mine,
        max: maxMine,
      })
    }
    let evidence
    try {
      evidence = await this.#o.provider.getEvidence(bindReportData(this.#o.tlsPublicKeyDer, clientNonce))
    } catch (cause) {
      this.#log.error({ err: cause }, 'cannot produce our own evidence')
      throw new CoordinatorError('COORDINATOR_EVIDENCE_UNAVAILABLE', 'the coordinator cannot produce evidence', {}, { cause })
    }
    const nonce = randomBytes(NONCE_BYTES)
    const expiresAt = now + (this.#o.nonceTtlMs ?? DEFAULT_NONCE_TTL_MS)
    this.#nonces.set(nonce.toString('hex'), { expiresAt, peer: client, consumed: false, counted: true })
    this.#perPeer.set(client, (this.#perPeer.get(client) ?? 0) + 1)
    return { Nonce: nonce, NonceExpiresUnixMs: expiresAt, Evidence: evidenceToWire(evidence), RootCACert: Buffer.from(this.ca.root.certificatePem) }
  }

  /** Marks the nonce used, whatever happens next: a nonce is good for one attempt. */
  #consumeNonce(nonce: Uint8Array, now: number): NonceEntry {
    const key = Buffer.from(nonce).toString('hex')
    const entry = this.#nonces.get(key)
    if (entry === undefined) throw new CoordinatorError('COORDINATOR_NONCE_UNKNOWN', 'nonce was not issued by this coordinator (or it restarted)', { nonce: key })
    if (entry.consumed) throw new CoordinatorError('COORDINATOR_NONCE_REPLAYED', `nonce ${key} was already used`, { nonce: key })
    entry.consumed = true
    if (entry.expiresAt <= now) throw new CoordinatorError('COORDINATOR_NONCE_EXPIRED', `nonce expired at ${new Date(entry.expiresAt).toISOString()}`, { nonce: key, expiresAt: entry.expiresAt })
    return entry
  }

  async newMeshCert(req: NewMeshCertRequest, peer: string | undefined): Promise<NewMeshCertResponse> {
    const now = this.#now()
    const nonce = req.Nonce ?? new Uint8Array(0)
    if (nonce.byteLength !== NONCE_BYTES) {
      throw new CoordinatorError('COORDINATOR_BAD_REQUEST', `Nonce must be ${NONCE_BYTES} B, got ${nonce.byteLength}`, { field: 'Nonce', length: nonce.byteLength })
    }
    const { publicKey, curve, der } = await importLeafKey(req.PublicKey)
    const evidence = wireToEvidence(req.Evidence)
    const spent = this.#consumeNonce(nonce, now)
    // Challenge hands anyone our own evidence over SHA-512(our TLS key ‖ their nonce);
    // with their nonce set to a server nonce it would pass the binding check below.
    // Our key never gets a mesh certificate, so that evidence is worth nothing here.
    // `der` is canonical (importLeafKey), so no encoding of our key slips past this.
    if (der.equals(Buffer.from(this.#o.tlsPublicKeyDer))) {
      throw new CoordinatorError('COORDINATOR_KEY_REFUSED', "the public key is the coordinator's own TLS key", { field: 'PublicKey' })
    }
    const manifest = this.#o.state.manifest
    const checked = checkEvidence(evidence, {
      publicKeyDer: der,
      nonce,
      requireReferenceValues: true,
      at: new Date(now),
      acceptSimulated: manifest.acceptSimulated,
      simulatedRoots: manifest.simulatedRoots,
      referenceValues: manifest.referenceValues,
      vendorRoots: this.#o.vendorRoots,
    })
    const hash = Buffer.from(checked.policyHash).toString('hex')
    const found = lookupPolicy(manifest, checked.policyHash)
    if (found === undefined) {
      throw new CoordinatorError('COORDINATOR_POLICY_NOT_FOUND', `policy hash ${hash} not found in manifest`, { policyHash: hash, tee: checked.tee })
    }
    if (found.policy.role === 'coordinator') {
      throw new CoordinatorError('COORDINATOR_KEY_REFUSED', `policy ${found.key} is a coordinator's; coordinators get no mesh certificate`, {
        policyHash: found.key,
      })
    }
    const peerIp = peerAddress(peer)
    const sans = [...found.policy.sans]
    if (peerIp !== undefined && !sans.includes(peerIp)) sans.push(peerIp)
    const issued = await this.ca.issue({ publicKey, sans, now, lifetimeMs: this.#o.leafLifetimeMs })
    this.#uncount(spent)
    this.#log.info(
      { policyHash: found.key, tee: checked.tee, curve, sans, generation: issued.generation, notAfter: issued.notAfter.toISOString(), peer: { address: peer } },
      'mesh certificate issued',
    )
    const id = found.policy.workloadSecretId
    return {
      MeshCACert: Buffer.from(issued.meshCaBundlePem),
      CertChain: Buffer.from(issued.certChainPem),
      RootCACert: Buffer.from(issued.rootPem),
      WorkloadSecret: id === undefined || id === '' ? Buffer.alloc(0) : Buffer.from(this.ca.workloadSecret(id)),
    }
  }

  /** Serialized: two updates never interleave their rotate-and-persist. */
  setManifest(req: SetManifestRequest): Promise<SetManifestResponse> {
    const next = this.#updating.then(
      () => this.#setManifest(req),
      () => this.#setManifest(req),
    )
    this.#updating = next
    return next
  }

  async #setManifest(req: SetManifestRequest): Promise<SetManifestResponse> {
    const state = this.#o.state
    const keyPem = state.updateKeyPem
    if (keyPem === undefined) {
      throw new CoordinatorError('COORDINATOR_UPDATE_UNAUTHENTICATED', 'no manifest update key was named at first start; updates are refused', {})
    }
    const text = Buffer.from(req.Manifest ?? new Uint8Array(0))
    const generation = state.manifestGeneration
    const signed = manifestUpdateMessage(generation, state.manifest.hash, text)
    if (!verifyUpdateSignature(keyPem, signed, req.Signature ?? new Uint8Array(0))) {
      throw new CoordinatorError(
        'COORDINATOR_UPDATE_UNAUTHENTICATED',
        `SetManifest signature does not verify against the update key, the current manifest ${state.manifest.hash} and generation ${generation}`,
        { currentManifest: state.manifest.hash, generation },
      )
    }
    const manifest = parseManifest(text.toString('utf8'), 'SetManifest.Manifest')
    if (manifest.hash === state.manifest.hash) {
      // Same manifest: nothing to rotate, and a replay of this request changes nothing.
      return {
        ManifestHash: Buffer.from(manifest.hash, 'hex'),
        MeshCACert: Buffer.from(this.ca.issuer(this.#now()).meshCa.certificatePem),
        ManifestGeneration: generation,
      }
    }
    const now = this.#now()
    const g = await this.ca.rotate(now, this.#o.rotationDelayMs ?? this.#o.leafLifetimeMs)
    const previous = state.manifest.hash
    state.manifest = manifest
    state.manifestGeneration = generation + 1
    await this.#o.persist(state)
    this.#log.info(
      { previous, manifest: manifest.hash, generation: g.id, issuingFrom: new Date(g.activeFrom).toISOString(), trusted: this.ca.trusted(now).map((t) => t.id) },
      'manifest updated; new mesh CA announced',
    )
    return { ManifestHash: Buffer.from(manifest.hash, 'hex'), MeshCACert: Buffer.from(g.meshCa.certificatePem), ManifestGeneration: state.manifestGeneration }
  }
}

/**
 * What a SetManifest signature covers: the generation it replaces (a counter of applied
 * updates, 0 for the first manifest) and that manifest's hash, then the new manifest.
 * The hash alone repeats after A -> B -> A, and the captured A -> B would apply again;
 * the generation never repeats.
 */
export function manifestUpdateMessage(generation: number, currentManifestHash: string, manifest: Uint8Array): Buffer {
  const g = Buffer.alloc(8)
  g.writeBigUInt64BE(BigInt(generation))
  return Buffer.concat([Buffer.from(SET_MANIFEST_CONTEXT), g, Buffer.from(currentManifestHash, 'hex'), manifest])
}

function verifyUpdateSignature(keyPem: string, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey(keyPem)
    const alg = key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256'
    return cryptoVerify(alg, message, key, signature)
  } catch {
    return false
  }
}

const CURVES: Record<string, 'P-256' | 'P-384'> = { prime256v1: 'P-256', secp384r1: 'P-384' }

/**
 * The request's key, parsed and re-encoded. The binding hashes `key ‖ nonce`, so a key
 * whose encoding may carry extra bytes would let one digest be read two ways (our own
 * TLS key ‖ 8 bytes, with a client nonce chosen to match): only the canonical DER of a
 * P-256/P-384 key is taken.
 */
async function importLeafKey(raw: Uint8Array | undefined): Promise<{ publicKey: CryptoKey; curve: 'P-256' | 'P-384'; der: Buffer }> {
  if (raw === undefined || raw.byteLength === 0) {
    throw new CoordinatorError('COORDINATOR_BAD_REQUEST', 'PublicKey is missing', { field: 'PublicKey' })
  }
  let curve: 'P-256' | 'P-384' | undefined
  let der: Buffer
  try {
    const key = createPublicKey({ key: Buffer.from(raw), format: 'der', type: 'spki' })
    curve = key.asymmetricKeyType === 'ec' ? CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''] : undefined
    der = key.export({ type: 'spki', format: 'der' })
  } catch (cause) {
    throw new CoordinatorError('COORDINATOR_BAD_REQUEST', 'PublicKey is not a PKIX DER public key', { field: 'PublicKey' }, { cause })
  }
  if (curve === undefined) {
    throw new CoordinatorError('COORDINATOR_BAD_REQUEST', 'PublicKey must be ECDSA P-256 or P-384', { field: 'PublicKey' })
  }
  if (!der.equals(Buffer.from(raw))) {
    throw new CoordinatorError('COORDINATOR_BAD_REQUEST', `PublicKey is not canonical DER (${raw.byteLength} B given, the key encodes to ${der.byteLength} B)`, {
      field: 'PublicKey',
      length: raw.byteLength,
      canonicalLength: der.byteLength,
    })
  }
  const publicKey = await crypto.subtle.importKey('spki', der, { name: 'ECDSA', namedCurve: curve }, true, ['verify'])
  return { publicKey, curve, der }
}

/** The IP of a gRPC peer string: `1.2.3.4:5`, `[fd00::1]:5`, `ipv4:…`, `::ffff:1.2.3.4`. */
export function peerAddress(peer: string | undefined): string | undefined {
  if (peer === undefined) return undefined
  let s = peer.replace(/^ipv[46]:/, '')
  if (s.startsWith('[')) s = s.slice(1, s.indexOf(']'))
  else if (s.split(':').length === 2) s = s.slice(0, s.lastIndexOf(':'))
  if (s.toLowerCase().startsWith('::ffff:') && isIP(s.slice(7)) === 4) s = s.slice(7)
  return isIP(s) !== 0 ? s : undefined
}

export function manifestHashOf(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex')
}

