// TLS material turned into the contexts every connection shares. Building a
// SecureContext parses PEM and loads the CA store: done once per credential
// generation, never per connection (a context per connect halves the handshake rate).
// A swap builds a new generation; established connections keep the one they
// started with, because a TLSSocket holds its own reference to its context.

import { createHash, randomBytes } from 'node:crypto'
import tls from 'node:tls'
import type { TlsMaterial } from '../dataplane.js'
import { DataPlaneError } from '../errors.js'
import { TLS_POLICY } from '../spec.js'
import { Lru } from '../../lru.js'

// TLS 1.3 suites first, then the 1.2 list, as OpenSSL takes them in one string.
const CIPHERS = [...TLS_POLICY.tls13Suites, ...TLS_POLICY.tls12Suites].join(':')
const CURVES = TLS_POLICY.curves.join(':')

/** Upper bound on cached client sessions; one per upstream (host, port, expected name). */
export const SESSION_CACHE_ENTRIES = 256

/**
 * Client-side TLS sessions by upstream. Insertion order doubles as recency: a
 * refreshed entry moves to the end and the oldest is evicted first. Tied to one
 * credential generation so a session verified under an old mesh CA never resumes
 * after a CA change.
 */
export class SessionCache extends Lru<string, Buffer> {
  constructor(max = SESSION_CACHE_ENTRIES) {
    super(max)
  }
}

export interface Credentials {
  /** 1 for the first material, +1 per swap; logged so a connection's generation is traceable. */
  readonly generation: number
  /**
   * One server context per terminating listener, by listener name. Each has its own
   * session-ID context and its own ticket keys, so a session issued where no client
   * certificate is asked for (`#false`) cannot resume on the mTLS listener: a
   * resumed session skips the certificate request.
   */
  readonly servers: ReadonlyMap<string, tls.SecureContext>
  readonly client: tls.SecureContext
  readonly sessions: SessionCache
}

/** OpenSSL's limit (SSL_MAX_SID_CTX_LENGTH) is 32 bytes: a digest of the listener name fits any name. */
function sessionIdContext(listener: string): string {
  return createHash('sha256').update(`podvm-mesh/${listener}`).digest('hex').slice(0, 32)
}

export interface CredentialOptions {
  /** Listeners that terminate TLS; each gets its own server context. */
  readonly serverListeners?: readonly string[]
  readonly sessionCacheEntries?: number
}

/** Builds the contexts of one generation from material pki has checked (requireCheckedMaterial). */
export function buildCredentials(material: TlsMaterial, generation: number, opts: CredentialOptions = {}): Credentials {
  const common: tls.SecureContextOptions = {
    cert: material.certChain,
    key: material.key,
    ca: material.meshCa,
    minVersion: TLS_POLICY.minVersion,
    maxVersion: TLS_POLICY.maxVersion,
    ciphers: CIPHERS,
    ecdhCurve: CURVES,
  }
  const servers = new Map<string, tls.SecureContext>()
  let client: tls.SecureContext
  try {
    // A server that verifies client certificates must name its session-ID context,
    // or OpenSSL refuses every resumption attempt with SESSION_ID_CONTEXT_UNINITIALIZED
    // (tls.Server sets one itself; raw TLSSockets over our own listeners do not).
    // Distinct contexts and ticket keys per listener: OpenSSL refuses a session whose
    // context differs, and a ticket sealed with another listener's keys does not open.
    for (const name of opts.serverListeners ?? []) {
      servers.set(name, tls.createSecureContext({ ...common, sessionIdContext: sessionIdContext(name), ticketKeys: randomBytes(48) }))
    }
    client = tls.createSecureContext(common)
  } catch (cause) {
    // Checked material has built a context before; should OpenSSL still refuse, its
    // message names the problem (key mismatch, bad PEM) and never contains key bytes.
    const reason = cause instanceof Error ? cause.message : String(cause)
    throw new DataPlaneError('DATAPLANE_CREDENTIALS', `TLS material rejected: ${reason}`, { reason }, { cause })
  }
  return {
    generation,
    servers,
    client,
    sessions: new SessionCache(opts.sessionCacheEntries),
  }
}
