// The coordinator's persisted state: one file in --state, replaced atomically (write a
// temporary file, fsync, rename, fsync the directory), mode 0600. It holds the CA keys
// and the manifest, and the host stores it: the JSON is sealed with AES-256-GCM under a
// key from a sealing provider (state-sealing.ts), with the envelope's header as
// associated data, so a changed byte, another key or another provider is refused.
// What sealing cannot stop: the host putting back an older sealed file (rollback);
// there is no monotonic counter in the guest to detect it.

import { createCipheriv, createDecipheriv, createPublicKey, hkdfSync, randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { isMeshError } from '../errors.js'
import { writeFileAtomic, type Curve } from '../pki/index.js'
import { CoordinatorCa } from './ca.js'
import { CoordinatorError } from './errors.js'
import { parseManifest, type Manifest } from './manifest.js'
import type { StateSealer } from './state-sealing.js'

export const STATE_FILE = 'coordinator-state.sealed'
/** Plaintext state of earlier versions: read once, then replaced by the sealed file. */
export const LEGACY_STATE_FILE = 'coordinator-state.json'
const STATE_VERSION = 1
const ENVELOPE_FORMAT = 'podvm-mesh sealed coordinator state v1'

const RecordSchema = z.strictObject({
  id: z.number().int().positive(),
  meshCaPem: z.string(),
  intermediatePem: z.string(),
  keyPem: z.string(),
  createdAt: z.number(),
  activeFrom: z.number(),
})

const StateSchema = z.strictObject({
  version: z.literal(STATE_VERSION),
  curve: z.enum(['P-256', 'P-384']),
  root: z.strictObject({ certPem: z.string(), keyPem: z.string() }),
  seedHex: z.string().regex(/^[0-9a-f]{64}$/),
  maxLifetimeMs: z.number().int().positive(),
  generations: z.array(RecordSchema).min(1),
  manifest: z.string(),
  /** Updates applied so far; SetManifest signatures bind it (absent in older files: 0). */
  manifestGeneration: z.number().int().min(0).optional(),
  /** SPKI PEM of the key that signs SetManifest requests; absent = updates refused. */
  updateKeyPem: z.string().optional(),
})

export interface CoordinatorState {
  readonly ca: CoordinatorCa
  manifest: Manifest
  /** Manifest updates applied so far (0 = the manifest of the first start). */
  manifestGeneration: number
  readonly updateKeyPem: string | undefined
}

const EnvelopeSchema = z.strictObject({
  format: z.literal(ENVELOPE_FORMAT),
  sealer: z.enum(['snp-derived-key', 'key-file', 'simulated']),
  params: z.record(z.string(), z.union([z.string(), z.number()])),
  iv: z.base64(),
  ciphertext: z.base64(),
  tag: z.base64(),
})

function header(sealer: StateSealer): Buffer {
  return Buffer.from(JSON.stringify({ format: ENVELOPE_FORMAT, sealer: sealer.kind, params: sealer.params }))
}

async function stateKey(sealer: StateSealer): Promise<Buffer> {
  // The sealing key is never used directly: HKDF gives this file its own key.
  return Buffer.from(hkdfSync('sha256', await sealer.key(), Buffer.alloc(0), 'podvm-mesh coordinator state', 32))
}

function invalid(path: string, message: string, details: Record<string, unknown> = {}, cause?: unknown): CoordinatorError {
  return new CoordinatorError('COORDINATOR_STATE_INVALID', `${path}: ${message}`, { path, ...details }, cause === undefined ? undefined : { cause })
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new CoordinatorError('COORDINATOR_STATE_INVALID', `${path} cannot be read`, { path }, { cause: err })
  }
}

async function unseal(path: string, text: string, sealer: StateSealer): Promise<string> {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (cause) {
    throw invalid(path, 'not JSON', {}, cause)
  }
  const env = EnvelopeSchema.safeParse(doc)
  if (!env.success) throw invalid(path, `not a sealed state envelope: ${env.error.issues[0]?.path.join('.')}: ${env.error.issues[0]?.message}`)
  const e = env.data
  // The configured provider decides, never the file: a file claiming another sealer is refused.
  if (e.sealer !== sealer.kind || JSON.stringify(e.params) !== JSON.stringify(sealer.params)) {
    throw invalid(path, `sealed by ${e.sealer} ${JSON.stringify(e.params)}, this coordinator seals with ${sealer.kind} ${JSON.stringify(sealer.params)}`, {
      sealedBy: e.sealer,
      sealer: sealer.kind,
    })
  }
  try {
    const d = createDecipheriv('aes-256-gcm', await stateKey(sealer), Buffer.from(e.iv, 'base64'))
    d.setAAD(header(sealer))
    d.setAuthTag(Buffer.from(e.tag, 'base64'))
    return Buffer.concat([d.update(Buffer.from(e.ciphertext, 'base64')), d.final()]).toString('utf8')
  } catch (cause) {
    // The sealer's own typed error (no key today) says more than "authentication failed".
    if (isMeshError(cause)) throw cause
    throw invalid(path, 'authentication failed: the file was changed, or sealed under another key', { sealer: sealer.kind }, cause)
  }
}

/**
 * Reads the state of an earlier run, or undefined if the directory has none. A plaintext
 * file of an earlier version is read (the next save seals it and removes it).
 */
export async function loadState(dir: string, sealer: StateSealer): Promise<CoordinatorState | undefined> {
  let path = join(dir, STATE_FILE)
  let text: string | undefined
  const sealed = await readIfPresent(path)
  if (sealed !== undefined) {
    text = await unseal(path, sealed, sealer)
  } else {
    path = join(dir, LEGACY_STATE_FILE)
    text = await readIfPresent(path)
    if (text === undefined) return undefined
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (cause) {
    throw invalid(path, 'not JSON', {}, cause)
  }
  const parsed = StateSchema.safeParse(doc)
  if (!parsed.success) {
    const first = parsed.error.issues[0]
    throw new CoordinatorError('COORDINATOR_STATE_INVALID', `${path}: ${first?.path.join('.')}: ${first?.message}`, {
      path,
      issues: parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
    })
  }
  const s = parsed.data
  const ca = await CoordinatorCa.restore({
    root: s.root,
    curve: s.curve as Curve,
    seedHex: s.seedHex,
    maxLifetimeMs: s.maxLifetimeMs,
    generations: s.generations,
  })
  return { ca, manifest: parseManifest(s.manifest, `${path}:manifest`), manifestGeneration: s.manifestGeneration ?? 0, updateKeyPem: s.updateKeyPem }
}

export async function saveState(dir: string, state: CoordinatorState, sealer: StateSealer): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const records = await state.ca.toRecords()
  const doc: z.input<typeof StateSchema> = {
    version: STATE_VERSION,
    curve: state.ca.curve,
    ...records,
    manifest: state.manifest.text,
    manifestGeneration: state.manifestGeneration,
    // JSON.stringify leaves an undefined key out.
    updateKeyPem: state.updateKeyPem,
  }
  const iv = randomBytes(12)
  const c = createCipheriv('aes-256-gcm', await stateKey(sealer), iv)
  c.setAAD(header(sealer))
  const ciphertext = Buffer.concat([c.update(JSON.stringify(doc), 'utf8'), c.final()])
  const envelope = {
    format: ENVELOPE_FORMAT,
    sealer: sealer.kind,
    params: sealer.params,
    iv: iv.toString('base64'),
    ciphertext: ciphertext.toString('base64'),
    tag: c.getAuthTag().toString('base64'),
  }
  writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(envelope)}\n`, 0o600)
  await rm(join(dir, LEGACY_STATE_FILE), { force: true })
  // The rename (and the removal) are durable only once the directory entry is.
  const d = await open(dir, 'r')
  try {
    await d.sync()
  } finally {
    await d.close()
  }
}

/** Normalizes a public key (PEM SPKI) so it can be compared and stored. */
export function normalizePublicKeyPem(pem: string, source: string): string {
  try {
    return createPublicKey(pem).export({ type: 'spki', format: 'pem' }).toString()
  } catch (cause) {
    throw new CoordinatorError('COORDINATOR_BAD_REQUEST', `${source}: not a public key`, { source }, { cause })
  }
}
