// The on-disk certificate store in Contrast's layout (`/contrast/tls-config`):
// mesh-ca.pem, certChain.pem, key.pem, coordinator-root-ca.pem. Workloads that read
// Contrast's files keep working because we keep the names and modes.

import { X509Certificate, createHash, createPrivateKey, createPublicKey } from 'node:crypto'
import { watch } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { writeFileAtomic } from './atomic-file.js'
import { PkiError } from './errors.js'

export const TLS_FILES = {
  meshCa: 'mesh-ca.pem',
  certChain: 'certChain.pem',
  key: 'key.pem',
  rootCa: 'coordinator-root-ca.pem',
} as const

export const DEFAULT_TLS_DIR = '/contrast/tls-config'

/** PEM text as found in Contrast's `/contrast/tls-config` layout. */
export interface TlsMaterial {
  /** `mesh-ca.pem`: one or more CA certificates (a bundle while the mesh CA rotates). */
  readonly meshCa: string
  /** `certChain.pem`: leaf first, then intermediates. */
  readonly certChain: string
  /** `key.pem`: PKCS#8 private key of the leaf. */
  readonly key: string
}

/** What a loaded, checked set of files tells about itself. */
export interface TlsMaterialInfo {
  readonly subject: string
  readonly sans: string
  readonly serial: string
  readonly notBefore: Date
  readonly notAfter: Date
  readonly fingerprint256: string
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

export function splitPemCertificates(pem: string): X509Certificate[] {
  return (pem.match(PEM_CERT) ?? []).map((block) => new X509Certificate(block))
}

// Material that passed checkTlsMaterial (and was frozen by it), with what the check
// learnt: data planes take it as it is instead of parsing the same PEM again.
const CHECKED = new WeakMap<TlsMaterial, TlsMaterialInfo>()

/** What checkTlsMaterial found in `m`, if `m` passed it: the data planes' cue not to check it again. */
export function checkedTlsInfo(m: TlsMaterial): TlsMaterialInfo | undefined {
  return CHECKED.get(m)
}

/**
 * The one check of TLS material, before any data plane sees it: every file parses,
 * the key belongs to the leaf, the chain leads to one of the mesh CAs, and OpenSSL
 * builds a context from it (what Envoy would refuse only in its log). A half-written
 * set (Contrast's initializer writes file by file) fails here instead of reaching a
 * SecureContext. The object passed is frozen and remembered as checked.
 */
export function checkTlsMaterial(m: TlsMaterial): TlsMaterialInfo {
  const parse = (file: string, text: string): X509Certificate[] => {
    let certs: X509Certificate[]
    try {
      certs = splitPemCertificates(text)
    } catch (cause) {
      throw new PkiError('PKI_BAD_PEM', `${file}: not a PEM certificate list`, { file }, { cause })
    }
    if (certs.length === 0) throw new PkiError('PKI_BAD_PEM', `${file}: no certificate found`, { file })
    return certs
  }
  const cas = parse(TLS_FILES.meshCa, m.meshCa)
  const chain = parse(TLS_FILES.certChain, m.certChain)
  const leaf = chain[0]!
  let key
  try {
    key = createPrivateKey(m.key)
  } catch (cause) {
    throw new PkiError('PKI_BAD_PEM', `${TLS_FILES.key}: not a private key`, { file: TLS_FILES.key }, { cause })
  }
  const fromKey = createPublicKey(key).export({ type: 'spki', format: 'der' })
  const fromCert = leaf.publicKey.export({ type: 'spki', format: 'der' })
  if (!fromKey.equals(fromCert)) {
    throw new PkiError('PKI_KEY_MISMATCH', `${TLS_FILES.key} does not belong to the leaf of ${TLS_FILES.certChain}`, {
      leaf: leaf.subject,
    })
  }
  // Walk leaf -> intermediates -> one of the mesh CAs (a bundle while the CA rotates).
  let current = leaf
  for (let depth = 0; ; depth++) {
    const anchor = cas.find((ca) => current.checkIssued(ca) && current.verify(ca.publicKey))
    if (anchor !== undefined) break
    const next = chain.slice(1).find((c) => c !== current && current.checkIssued(c) && current.verify(c.publicKey))
    if (next === undefined || depth > chain.length) {
      throw new PkiError('PKI_CHAIN_UNTRUSTED', `${TLS_FILES.certChain} does not chain to ${TLS_FILES.meshCa}`, {
        leaf: leaf.subject,
        issuer: current.issuer,
      })
    }
    current = next
  }
  try {
    createSecureContext({ cert: m.certChain, key: m.key, ca: m.meshCa })
  } catch (cause) {
    // OpenSSL's message names the problem; it never contains key bytes.
    throw new PkiError('PKI_BAD_PEM', `OpenSSL refuses the set: ${(cause as Error).message}`, { file: TLS_FILES.certChain }, { cause })
  }
  const info: TlsMaterialInfo = Object.freeze({
    subject: leaf.subject,
    sans: leaf.subjectAltName ?? '',
    serial: leaf.serialNumber,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    fingerprint256: leaf.fingerprint256,
  })
  CHECKED.set(Object.freeze(m), info)
  return info
}

/** Reads and checks the three files the data plane needs. */
export async function readTlsDir(dir: string): Promise<{ material: TlsMaterial; info: TlsMaterialInfo }> {
  const read = async (file: string): Promise<string> => {
    try {
      return await readFile(join(dir, file), 'utf8')
    } catch (cause) {
      throw new PkiError('PKI_MISSING_FILE', `${join(dir, file)} cannot be read`, { dir, file }, { cause })
    }
  }
  const material: TlsMaterial = {
    meshCa: await read(TLS_FILES.meshCa),
    certChain: await read(TLS_FILES.certChain),
    key: await read(TLS_FILES.key),
  }
  return { material, info: checkTlsMaterial(material) }
}

/**
 * Writes a full set in Contrast's layout. The key goes last-but-one and the chain
 * last, so a watcher that reloads on the chain's rename sees a matching key.
 */
export async function writeTlsDir(
  dir: string,
  m: TlsMaterial & { readonly rootCa?: string },
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 })
  if (m.rootCa !== undefined) writeFileAtomic(join(dir, TLS_FILES.rootCa), m.rootCa, 0o444)
  writeFileAtomic(join(dir, TLS_FILES.meshCa), m.meshCa, 0o444)
  writeFileAtomic(join(dir, TLS_FILES.key), m.key, 0o400)
  writeFileAtomic(join(dir, TLS_FILES.certChain), m.certChain, 0o444)
}

export interface TlsDirWatcher extends AsyncDisposable {
  close(): void
}

/**
 * Calls `onChange` with each new, consistent set of files in `dir`. Changes are
 * debounced because writers replace the files one by one; a set that fails
 * `checkTlsMaterial` is logged and skipped, so the data plane keeps the last good one.
 * fs.watch on the directory (not the files) survives atomic renames.
 */
export function watchTlsDir(
  dir: string,
  onChange: (material: TlsMaterial, info: TlsMaterialInfo) => void,
  opts: { log: Logger; debounceMs?: number; signal?: AbortSignal; current?: TlsMaterial },
): TlsDirWatcher {
  const log = opts.log.child({ component: 'pki', dir })
  const debounceMs = opts.debounceMs ?? 250
  let timer: NodeJS.Timeout | undefined
  // Seeded with what the caller already loaded, so a touch of the files is not a change.
  let lastIdentity = opts.current === undefined ? undefined : materialIdentity(opts.current)
  let closed = false

  const reload = async (): Promise<void> => {
    timer = undefined
    try {
      const { material, info } = await readTlsDir(dir)
      if (closed) return
      const identity = materialIdentity(material)
      if (identity === lastIdentity) return
      lastIdentity = identity
      log.info({ subject: info.subject, serial: info.serial, notAfter: info.notAfter }, 'certificates changed')
      onChange(material, info)
    } catch (err) {
      log.warn({ err }, 'certificate files changed but are not usable yet; keeping the previous set')
    }
  }
  const watcher = watch(dir, { persistent: false }, () => {
    if (closed) return
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(() => void reload(), debounceMs)
  })
  watcher.on('error', (err) => log.warn({ err }, 'watch failed'))
  const close = (): void => {
    if (closed) return
    closed = true
    if (timer !== undefined) clearTimeout(timer)
    watcher.close()
  }
  opts.signal?.addEventListener('abort', close, { once: true })
  return {
    close,
    async [Symbol.asyncDispose]() {
      close()
    },
  }
}

function materialIdentity(m: TlsMaterial): string {
  return createHash('sha256').update(m.certChain).update('\0').update(m.meshCa).update('\0').update(m.key).digest('hex')
}
