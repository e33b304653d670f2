// File-based SDS: the two secret files the bootstrap points at (SDS_FILES), each a
// DiscoveryResponse with exactly one Secret whose name matches the bootstrap's
// reference (Envoy rejects any other count or name).
//
// PEM goes in `inline_string`, not `filename`: certificate and key then live in one
// file and change in one rename. With `filename` references Envoy would watch three
// files and could load a new certificate next to the old key between two renames.
// The files carry the private key, so they are written 0600 into a directory only the
// daemon and Envoy can read (tmpfs in the guest).

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic, type TlsMaterial } from '../../pki/index.js'
import { requireCheckedMaterial } from '../checked-material.js'
import { SDS_FILES, SECRET_NAMES, TYPE_URLS } from './bootstrap.js'
import { EnvoyError } from './errors.js'

export interface SdsFiles {
  /** File name in the SDS directory → JSON text. Written CA first, certificate second. */
  readonly [SDS_FILES.validation]: string
  readonly [SDS_FILES.certificate]: string
}

type Json = Record<string, unknown>

function discoveryResponse(secret: Json): string {
  return `${JSON.stringify({ resources: [{ '@type': TYPE_URLS.secret, ...secret }] }, null, 2)}\n`
}

export function renderSdsResources(material: TlsMaterial): SdsFiles {
  return {
    [SDS_FILES.validation]: discoveryResponse({
      name: SECRET_NAMES.validation,
      validation_context: { trusted_ca: { inline_string: material.meshCa } },
    }),
    [SDS_FILES.certificate]: discoveryResponse({
      name: SECRET_NAMES.certificate,
      tls_certificate: {
        certificate_chain: { inline_string: material.certChain },
        private_key: { inline_string: material.key },
      },
    }),
  }
}

/**
 * Writes both secret files atomically (pki's writeFileAtomic: temp file, fsync, rename,
 * fsync of the directory). Envoy's watched_directory reloads on the rename. The CA goes first, so
 * during a mesh-CA rotation (CA bundle old+new, then a certificate from the new CA)
 * Envoy never holds a certificate its own peers' trust store cannot yet verify.
 *
 * Unchecked material is checked first (pki's one check); nothing is written if it fails.
 * Synchronous on purpose: DataPlane.setCredentials is synchronous, and the files must
 * be in place when it returns; they are a few KiB.
 */
export function writeSdsResources(dir: string, material: TlsMaterial): void {
  requireCheckedMaterial(material)
  const files = renderSdsResources(material)
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch (err) {
    throw new EnvoyError('ENVOY_WRITE', `cannot create ${dir}: ${(err as Error).message}`, { path: dir }, { cause: err })
  }
  for (const name of [SDS_FILES.validation, SDS_FILES.certificate] as const) {
    writeEnvoyFile(join(dir, name), files[name])
  }
}

/** pki's writeFileAtomic, failing as ENVOY_WRITE. */
export function writeEnvoyFile(path: string, text: string, mode = 0o600): void {
  try {
    writeFileAtomic(path, text, mode)
  } catch (err) {
    throw new EnvoyError('ENVOY_WRITE', `cannot write ${path}: ${(err as Error).message}`, { path }, { cause: err })
  }
}
