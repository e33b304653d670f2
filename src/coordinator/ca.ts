// The coordinator's CA: one root for the coordinator's life, and a series of mesh CAs,
// one per manifest. Each mesh CA is Contrast's twin (self-signed mesh CA + the same key
// certified by the root as the intermediate sent after each leaf).
//
// Rotation without drops: peers trust the mesh CA bundle they last received, so a pod
// that has not renewed yet would refuse a leaf from a CA it never saw. A new mesh CA is
// therefore *announced* first — put in every bundle handed out — and starts *issuing*
// one leaf lifetime later, when every pod has renewed (at 2/3 of a lifetime) and trusts
// it. The CA it replaces stays in the bundle until the last leaf it signed has expired.
//
//   mesh CA i:  created ── announced ──> activeFrom_i ── issuing ──> activeFrom_{i+1}
//               ── retired (still trusted) ──> activeFrom_{i+1} + leaf lifetime ── dropped

import { createPrivateKey, createPublicKey, hkdfSync, webcrypto, X509Certificate as NodeX509 } from 'node:crypto'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import type { Curve } from '../pki/index.js'
import { createAuthority, createMeshAuthority, issueLeaf, type Authority } from '../pki/issuing.js'
import { CoordinatorError } from './errors.js'

const crypto = webcrypto as unknown as Crypto

export const ROOT_CN = 'system:coordinator:root'
export const MESH_CN = 'system:coordinator:intermediate'
/** Default leaf lifetime (the issue's short default). */
export const DEFAULT_LEAF_LIFETIME_MS = 24 * 60 * 60 * 1000
const HOUR_MS = 60 * 60 * 1000

export interface MeshCaGeneration {
  readonly id: number
  readonly meshCa: Authority
  readonly intermediate: Authority
  readonly createdAt: number
  /** When it starts issuing leaves (ms since epoch). */
  readonly activeFrom: number
}

/** What state.ts persists of one generation. Keys as PKCS#8 PEM. */
export interface MeshCaRecord {
  readonly id: number
  readonly meshCaPem: string
  readonly intermediatePem: string
  readonly keyPem: string
  readonly createdAt: number
  readonly activeFrom: number
}

export interface RootRecord {
  readonly certPem: string
  readonly keyPem: string
}

export interface IssuedMeshCert {
  /** PEM bundle of every mesh CA a peer must trust now (current, announced, retired). */
  readonly meshCaBundlePem: string
  /** leaf ‖ intermediate of the issuing generation. */
  readonly certChainPem: string
  readonly rootPem: string
  readonly notBefore: Date
  readonly notAfter: Date
  readonly generation: number
}

/**
 * Backdating absorbs clock skew between coordinator and pods (Contrast: one hour); a
 * short lifetime gets a proportionally short backdate so it stays mostly in the future.
 */
export function backdateMs(lifetimeMs: number): number {
  return Math.min(HOUR_MS, Math.floor(lifetimeMs / 10))
}

export class CoordinatorCa {
  readonly root: Authority
  readonly curve: Curve
  #generations: MeshCaGeneration[]
  /** The longest lifetime leaves have been issued with: bounds how long a retired CA must stay trusted. */
  #maxLifetimeMs: number
  readonly #seed: Uint8Array

  private constructor(root: Authority, generations: MeshCaGeneration[], maxLifetimeMs: number, seed: Uint8Array) {
    this.root = root
    this.curve = root.curve
    this.#generations = generations
    this.#maxLifetimeMs = maxLifetimeMs
    this.#seed = seed
  }

  static async create(opts: { curve: Curve; now: number; leafLifetimeMs: number }): Promise<CoordinatorCa> {
    const root = await createAuthority({ commonName: ROOT_CN, curve: opts.curve, notBefore: new Date(opts.now - HOUR_MS) })
    const seed = new Uint8Array(32)
    crypto.getRandomValues(seed)
    const ca = new CoordinatorCa(root, [], opts.leafLifetimeMs, seed)
    await ca.#addGeneration(opts.now, opts.now)
    return ca
  }

  static async restore(rec: {
    root: RootRecord
    curve: Curve
    seedHex: string
    maxLifetimeMs: number
    generations: readonly MeshCaRecord[]
  }): Promise<CoordinatorCa> {
    const root = await authorityFromPem(rec.root.certPem, rec.root.keyPem, rec.curve, 'root')
    const generations: MeshCaGeneration[] = []
    for (const g of rec.generations) {
      const meshCa = await authorityFromPem(g.meshCaPem, g.keyPem, rec.curve, `meshCa[${g.id}]`)
      const intermediate = await authorityFromPem(g.intermediatePem, g.keyPem, rec.curve, `intermediate[${g.id}]`)
      generations.push({ id: g.id, meshCa, intermediate, createdAt: g.createdAt, activeFrom: g.activeFrom })
    }
    if (generations.length === 0) throw new CoordinatorError('COORDINATOR_STATE_INVALID', 'state has no mesh CA', { field: 'generations' })
    return new CoordinatorCa(root, generations, rec.maxLifetimeMs, Buffer.from(rec.seedHex, 'hex'))
  }

  async toRecords(): Promise<{ root: RootRecord; seedHex: string; maxLifetimeMs: number; generations: MeshCaRecord[] }> {
    return {
      root: { certPem: this.root.certificatePem, keyPem: await privatePem(this.root.keys.privateKey) },
      seedHex: Buffer.from(this.#seed).toString('hex'),
      maxLifetimeMs: this.#maxLifetimeMs,
      generations: await Promise.all(
        this.#generations.map(async (g) => ({
          id: g.id,
          meshCaPem: g.meshCa.certificatePem,
          intermediatePem: g.intermediate.certificatePem,
          keyPem: await privatePem(g.meshCa.keys.privateKey),
          createdAt: g.createdAt,
          activeFrom: g.activeFrom,
        })),
      ),
    }
  }

  get generations(): readonly MeshCaGeneration[] {
    return this.#generations
  }

  async #addGeneration(now: number, activeFrom: number): Promise<MeshCaGeneration> {
    const last = this.#generations.at(-1)
    const { meshCa, intermediate } = await createMeshAuthority({
      root: this.root,
      commonName: MESH_CN,
      curve: this.curve,
      notBefore: new Date(now - HOUR_MS),
    })
    // activeFrom never goes back: generations issue in creation order.
    const g = { id: (last?.id ?? 0) + 1, meshCa, intermediate, createdAt: now, activeFrom: Math.max(activeFrom, last?.activeFrom ?? 0) }
    this.#generations.push(g)
    return g
  }

  /** The generation issuing leaves at `now`: the newest whose activeFrom has come. */
  issuer(now: number): MeshCaGeneration {
    let current = this.#generations[0]!
    for (const g of this.#generations) if (g.activeFrom <= now) current = g
    return current
  }

  /** Generations a peer must trust at `now`, newest first. Drops nothing by itself. */
  trusted(now: number): MeshCaGeneration[] {
    const out: MeshCaGeneration[] = []
    this.#generations.forEach((g, i) => {
      const next = this.#generations[i + 1]
      if (next === undefined || now < next.activeFrom + this.#maxLifetimeMs + backdateMs(this.#maxLifetimeMs)) out.push(g)
    })
    return out.reverse()
  }

  /** Forgets generations no peer can need any more. Returns whether anything went. */
  prune(now: number): boolean {
    const keep = this.trusted(now)
    if (keep.length === this.#generations.length) return false
    this.#generations = this.#generations.filter((g) => keep.includes(g))
    return true
  }

  /** A new mesh CA for a new manifest: trusted at once, issuing after `delayMs`. */
  async rotate(now: number, delayMs: number): Promise<MeshCaGeneration> {
    const g = await this.#addGeneration(now, now + delayMs)
    this.prune(now)
    return g
  }

  noteLifetime(lifetimeMs: number): void {
    this.#maxLifetimeMs = Math.max(this.#maxLifetimeMs, lifetimeMs)
  }

  get maxLifetimeMs(): number {
    return this.#maxLifetimeMs
  }

  async issue(opts: { publicKey: CryptoKey; sans: readonly string[]; now: number; lifetimeMs: number }): Promise<IssuedMeshCert> {
    this.noteLifetime(opts.lifetimeMs)
    const g = this.issuer(opts.now)
    const back = backdateMs(opts.lifetimeMs)
    const leaf = await issueLeaf(g.meshCa, {
      sans: opts.sans,
      publicKey: opts.publicKey,
      notBefore: new Date(opts.now - back),
      lifetimeMs: opts.lifetimeMs + back,
    })
    return {
      meshCaBundlePem: this.trusted(opts.now)
        .map((t) => t.meshCa.certificatePem)
        .join(''),
      certChainPem: leaf.certificatePem + g.intermediate.certificatePem,
      rootPem: this.root.certificatePem,
      notBefore: new Date(opts.now - back),
      notAfter: leaf.notAfter,
      generation: g.id,
    }
  }

  /** The coordinator's own TLS certificate, signed by the root: clients pin the root. */
  async issueServerCertificate(opts: { publicKey: CryptoKey; sans: readonly string[]; now: number }): Promise<string> {
    const leaf = await issueLeaf(this.root, {
      sans: opts.sans,
      publicKey: opts.publicKey,
      notBefore: new Date(opts.now - HOUR_MS),
      lifetimeMs: 366 * 24 * HOUR_MS,
    })
    return leaf.certificatePem
  }

  /** Contrast-style workload secret: derived, never stored, stable across restarts. */
  workloadSecret(id: string): Uint8Array {
    return new Uint8Array(hkdfSync('sha256', this.#seed, new Uint8Array(0), `WORKLOAD SECRET ID ${id}`, 32))
  }
}

async function privatePem(key: CryptoKey): Promise<string> {
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', key)
  return `${x509.PemConverter.encode(pkcs8, 'PRIVATE KEY').trimEnd()}\n`
}

async function authorityFromPem(certPem: string, keyPem: string, curve: Curve, field: string): Promise<Authority> {
  try {
    const certificate = new x509.X509Certificate(certPem)
    const privateKey = await crypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(keyPem), { name: 'ECDSA', namedCurve: curve }, true, [
      'sign',
    ])
    const publicKey = await certificate.publicKey.export({ name: 'ECDSA', namedCurve: curve }, ['verify'])
    // The key must belong to the certificate, or leaves would not verify against it.
    const spkiCert = Buffer.from(new NodeX509(certPem).publicKey.export({ type: 'spki', format: 'der' }))
    const spkiKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' })
    if (!spkiCert.equals(spkiKey)) throw new Error('private key does not belong to the certificate')
    return { certificate, certificatePem: `${certificate.toString('pem').trimEnd()}\n`, keys: { privateKey, publicKey }, curve }
  } catch (cause) {
    throw new CoordinatorError('COORDINATOR_STATE_INVALID', `state ${field}: ${(cause as Error).message}`, { field }, { cause })
  }
}
