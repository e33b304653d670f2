// The coordinator's persisted state: one JSON file in --state, replaced atomically
// (write a temporary file, fsync, rename, fsync the directory), mode 0600 because it
// holds the CA keys. A restarted coordinator reads it back and serves the same root.

import { createPublicKey } from 'node:crypto'
import { mkdir, open, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { writeFileAtomic, type Curve } from '../pki/index.js'
import { CoordinatorCa } from './ca.js'
import { CoordinatorError } from './errors.js'
import { parseManifest, type Manifest } from './manifest.js'

export const STATE_FILE = 'coordinator-state.json'
const STATE_VERSION = 1

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

/** Reads the state of an earlier run, or undefined if the directory has none. */
export async function loadState(dir: string): Promise<CoordinatorState | undefined> {
  const path = join(dir, STATE_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new CoordinatorError('COORDINATOR_STATE_INVALID', `${path} cannot be read`, { path }, { cause: err })
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (cause) {
    throw new CoordinatorError('COORDINATOR_STATE_INVALID', `${path}: not JSON`, { path }, { cause })
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

export async function saveState(dir: string, state: CoordinatorState): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const records = await state.ca.toRecords()
  const doc: z.input<typeof StateSchema> = {
    version: STATE_VERSION,
    curve: state.ca.curve,
    ...records,
    manifest: state.manifest.text,
    manifestGeneration: state.manifestGeneration,
    ...(state.updateKeyPem !== undefined ? { updateKeyPem: state.updateKeyPem } : {}),
  }
  writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(doc, null, 1)}\n`, 0o600)
  // The rename is durable only once the directory entry is.
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
