// The guest's certificate lifecycle: attest to the coordinator, get mesh certificates,
// write them into Contrast's TLS directory, renew at two thirds of their lifetime.
//
// It only writes files. The daemon waits for a consistent directory at boot and
// watches it afterwards (daemon.ts), exactly as it does for certificates written by
// Contrast's initializer — so the attested path and the file path meet in one place,
// and a renewal or a changed trust bundle is a hot swap that keeps connections.
//
// Per attempt: fetch the coordinator's root from its TLS handshake; Challenge with a
// fresh client nonce; check the coordinator's evidence (genuine, bound to the TLS key
// the channel proved, and matching the pinned identity) before believing anything it
// says; a new P-256 key in memory; our evidence bound to SHA-512(key ‖ nonce);
// NewMeshCert; check the answer chains to the root we verified; write.
//
// Failure never opens the pod: before the first success the directory stays empty
// (the daemon keeps the baseline), afterwards the last good set stays until renewed.

import { createHash, randomBytes, X509Certificate } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import { bindReportData, parseSnpReport, parseTdxQuote, toHex, type Evidence, type EvidenceProvider } from '../attestation/index.js'
import { checkInitdataDigest } from '../config/index.js'
import { checkEvidence, connectMeshApi, CoordinatorError, evidenceProvider, evidenceToWire, wireToEvidence } from '../coordinator/index.js'
import { isMeshError } from '../errors.js'
import { checkTlsMaterial, generateKeyPair, splitPemCertificates, TLS_FILES, writeFileAtomic, writeTlsDir } from '../pki/index.js'
import { requireCoordinatorForAttestedFlags } from './attested-options.js'
import { AgentError } from './errors.js'

export type CoordinatorIdentity =
  /** The coordinator's policy hash (initdata digest) as its evidence must report it. */
  | { readonly kind: 'policy-hash'; readonly hex: string }
  /** SHA-256 of the coordinator's root CA certificate (DER). */
  | { readonly kind: 'root-ca'; readonly sha256: string }

/** `policy:HEX` / bare HEX (32, 48 or 64 bytes) = policy hash; `root-ca:HEX` (32 bytes) = root fingerprint. */
export function parseCoordinatorIdentity(text: string): CoordinatorIdentity {
  const t = text.trim().toLowerCase()
  const at = t.indexOf(':')
  // Fingerprints are often printed with colons between bytes (AB:CD:…): drop them.
  const [prefix, value] = at < 0 ? ['policy', t] : [t.slice(0, at), t.slice(at + 1).replaceAll(':', '')]
  if (prefix === 'root-ca' && /^[0-9a-f]{64}$/.test(value)) return { kind: 'root-ca', sha256: value }
  if (prefix === 'policy' && /^(?:[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$/.test(value)) return { kind: 'policy-hash', hex: value }
  throw new AgentError('AGENT_BAD_ARGS', `coordinator identity "${text}": expected policy:<hex of 32/48/64 B> or root-ca:<sha256 hex>`, {
    field: 'coordinator-identity',
    value: text,
  })
}

/**
 * A policy hash names a configuration that whoever launches the VM may set; only a
 * launch measurement names the code. On real hardware the pin must carry both (labs
 * with simulated evidence prove nothing either way and are exempt).
 */
export function requireMeasurementPin(measurements: readonly string[] | undefined, tee: string): void {
  if (measurements === undefined && tee !== 'simulated') {
    throw new CoordinatorError(
      'COORDINATOR_UNTRUSTED',
      'a policy-hash pin needs the coordinator measurements too (HOST_DATA/MRCONFIGID is chosen by the host at launch); pin --coordinator-measurement, or root-ca:',
      { step: 'identity', tee },
    )
  }
}

/** The pinned digest as the TEE field holds it: zero-padded or truncated (as Kata does). */
function pinAsField(hex: string, size: number): string {
  const b = Buffer.alloc(size)
  Buffer.from(hex, 'hex').copy(b, 0, 0, size)
  return b.toString('hex')
}

export interface ObtainedCertificate {
  readonly serial: string
  readonly notBefore: Date
  readonly notAfter: Date
  /** When the lifecycle will renew it. */
  readonly renewAt: Date
  readonly sans: string
  /** Mesh CAs in the trust bundle. */
  readonly trustedCas: number
}

export interface AttestedCertificatesOptions {
  readonly address: string
  readonly identity: CoordinatorIdentity
  /**
   * Launch measurements (SNP MEASUREMENT / TDX MRTD, hex) the coordinator's evidence must
   * report. Required with a policy-hash pin on real hardware: HOST_DATA / MRCONFIGID is
   * chosen by whoever launches the VM, so on its own it says nothing about the code.
   */
  readonly coordinatorMeasurements?: readonly string[]
  readonly provider: EvidenceProvider
  /** Accept a coordinator whose evidence is simulated (only with our own simulated evidence). */
  readonly acceptSimulatedCoordinator: boolean
  readonly tlsDir: string
  readonly log: Logger
  /**
   * The initdata digest this pod booted with. Our own evidence must report it (SNP
   * HOST_DATA, TDX MRCONFIGID), or the measured configuration is not the one we run
   * and nothing is sent: the pod stays closed.
   */
  readonly measuredConfigDigest?: Uint8Array
  /** Fraction of the lifetime after which to renew. Default 2/3. */
  readonly renewFraction?: number
  /** Retry backoff: first delay, doubling up to max, each jittered to [50 %, 100 %]. */
  readonly retryInitialMs?: number
  readonly retryMaxMs?: number
  readonly callTimeoutMs?: number
  readonly random?: () => number
  /**
   * Called when an attempt fails in a way retrying alone will not fix (see
   * `definitiveFailureReason`) while no certificate is held. Retries go on regardless:
   * a manifest update can still admit the pod.
   */
  readonly onDefinitiveFailure?: (reason: string) => void
}

// Answers that say "try again": the coordinator was busy or lost our nonce (restart).
const TRANSIENT_REFUSALS = new Set(['COORDINATOR_BUSY', 'COORDINATOR_NONCE_UNKNOWN', 'COORDINATOR_NONCE_EXPIRED', 'COORDINATOR_NONCE_REPLAYED'])

/**
 * The reason code when a failed attempt means the mesh will not come up without a change
 * outside the pod: the coordinator refused this pod (unknown policy, evidence or reference
 * values rejected), the coordinator failed our verification, or our own evidence does not
 * report the measured config. Undefined for what retrying can fix (unreachable, busy).
 */
export function definitiveFailureReason(err: unknown): string | undefined {
  if (!isMeshError(err)) return undefined
  if (err.code === 'COORDINATOR_REFUSED') {
    const reason = err.details['reason']
    if (typeof reason !== 'string' || TRANSIENT_REFUSALS.has(reason)) return undefined
    return /^[A-Z][A-Z0-9_]{0,63}$/.test(reason) ? reason : err.code
  }
  if (err.code === 'COORDINATOR_UNTRUSTED' || err.code === 'INITDATA_DIGEST_MISMATCH' || err.code === 'INITDATA_BAD_EVIDENCE_FIELD') return err.code
  return undefined
}

export class AttestedCertificates {
  readonly #o: AttestedCertificatesOptions
  readonly #log: Logger
  #current: ObtainedCertificate | undefined
  #attempts = 0
  #failures = 0

  constructor(opts: AttestedCertificatesOptions) {
    this.#o = opts
    this.#log = opts.log.child({ component: 'attested-certs', coordinator: opts.address })
  }

  get current(): ObtainedCertificate | undefined {
    return this.#current
  }

  get failures(): number {
    return this.#failures
  }

  /** One full exchange; throws a typed error naming the failed step. Writes nothing on failure. */
  async obtain(signal?: AbortSignal): Promise<ObtainedCertificate> {
    this.#attempts++
    const o = this.#o
    const conn = await connectMeshApi(o.address, { ...(o.callTimeoutMs !== undefined ? { timeoutMs: o.callTimeoutMs } : {}), ...(signal !== undefined ? { signal } : {}) })
    try {
      const clientNonce = randomBytes(32)
      const ch = await conn.challenge({ ClientNonce: clientNonce })
      const rootDer = conn.root.raw
      const keys = conn.serverKeys()
      if (keys.length !== 1) {
        throw new CoordinatorError('COORDINATOR_UNTRUSTED', `saw ${keys.length} TLS keys during the challenge; cannot tell which one the evidence binds`, { keys: keys.length })
      }
      if (!sameCert(ch.RootCACert, rootDer)) {
        throw new CoordinatorError('COORDINATOR_UNTRUSTED', 'the root in Challenge is not the root of the TLS chain', { step: 'root' })
      }
      // The coordinator's evidence: genuine, bound to the TLS key this channel proved.
      let checked
      try {
        const measurements = o.coordinatorMeasurements
        checked = checkEvidence(wireToEvidence(ch.Evidence), {
          publicKeyDer: keys[0]!,
          nonce: clientNonce,
          at: new Date(),
          acceptSimulated: o.acceptSimulatedCoordinator,
          ...(measurements !== undefined
            ? { referenceValues: { snp: { measurements: [...measurements] }, tdx: { mrTd: [...measurements] } } }
            : {}),
        })
      } catch (err) {
        if (!(err instanceof CoordinatorError)) throw err
        throw new CoordinatorError('COORDINATOR_UNTRUSTED', `coordinator evidence: ${err.message}`, { step: 'evidence', reason: err.code, ...err.details }, { cause: err })
      }
      const rootSha256 = createHash('sha256').update(rootDer).digest('hex')
      if (o.identity.kind === 'root-ca' && rootSha256 !== o.identity.sha256) {
        throw new CoordinatorError('COORDINATOR_UNTRUSTED', `coordinator root ${rootSha256} is not the pinned ${o.identity.sha256}`, { step: 'identity', rootSha256 })
      }
      if (o.identity.kind === 'policy-hash') {
        requireMeasurementPin(o.coordinatorMeasurements, checked.tee)
        const reported = toHex(checked.policyHash)
        const want = pinAsField(o.identity.hex, checked.policyHash.byteLength)
        if (reported !== want) {
          throw new CoordinatorError('COORDINATOR_UNTRUSTED', `coordinator policy hash ${reported} is not the pinned ${want}`, { step: 'identity', reported, pinned: want })
        }
      }
      this.#log.debug({ tee: checked.tee, rootSha256 }, 'coordinator verified')

      const kp = await generateKeyPair('P-256')
      const spki = new Uint8Array(await globalThis.crypto.subtle.exportKey('spki', kp.keys.publicKey))
      const evidence = await o.provider.getEvidence(bindReportData(spki, ch.Nonce), signal !== undefined ? { signal } : {})
      if (o.measuredConfigDigest !== undefined) checkInitdataDigest(o.measuredConfigDigest, measuredConfigField(evidence))
      const res = await conn.newMeshCert({ Nonce: ch.Nonce, PublicKey: spki, Evidence: evidenceToWire(evidence) })

      if (!sameCert(res.RootCACert, rootDer)) {
        throw new CoordinatorError('COORDINATOR_UNTRUSTED', 'RootCACert in NewMeshCert is not the verified root', { step: 'response' })
      }
      const material = {
        meshCa: Buffer.from(res.MeshCACert).toString('utf8'),
        certChain: Buffer.from(res.CertChain).toString('utf8'),
        key: kp.privateKeyPem,
        rootCa: Buffer.from(res.RootCACert).toString('utf8'),
      }
      let info
      try {
        info = checkTlsMaterial(material)
        // The intermediate must be the verified root's: a leaf the root never vouched for is not the coordinator's.
        const chain = splitPemCertificates(material.certChain)
        const root = new X509Certificate(rootDer)
        if (chain.length < 2 || !chain[1]!.verify(root.publicKey)) throw new Error('the intermediate is not signed by the root')
      } catch (cause) {
        throw new CoordinatorError('COORDINATOR_UNTRUSTED', `NewMeshCert answer unusable: ${(cause as Error).message}`, { step: 'response' }, { cause })
      }
      await writeTlsDir(o.tlsDir, material)
      if (res.WorkloadSecret !== undefined && res.WorkloadSecret.byteLength > 0) await writeWorkloadSecret(o.tlsDir, res.WorkloadSecret)
      const lifetime = info.notAfter.getTime() - info.notBefore.getTime()
      const fraction = o.renewFraction ?? 2 / 3
      const got: ObtainedCertificate = {
        serial: info.serial,
        notBefore: info.notBefore,
        notAfter: info.notAfter,
        renewAt: new Date(info.notBefore.getTime() + lifetime * fraction),
        sans: info.sans,
        trustedCas: splitPemCertificates(material.meshCa).length,
      }
      this.#current = got
      this.#log.info(
        { serial: got.serial, sans: got.sans, notAfter: got.notAfter.toISOString(), renewAt: got.renewAt.toISOString(), trustedCas: got.trustedCas, evidence: evidence.provider },
        'mesh certificate obtained',
      )
      return got
    } finally {
      conn.close()
    }
  }

  /** Obtains, then renews forever; returns when `signal` aborts. Never throws for a failed attempt. */
  async run(signal: AbortSignal): Promise<void> {
    let failuresInRow = 0
    let lastReason: string | undefined
    while (!signal.aborted) {
      let wait: number
      try {
        const got = await this.obtain(signal)
        failuresInRow = 0
        lastReason = undefined
        // A lifetime shorter than a round trip must not turn renewal into a busy loop.
        const floor = Math.min(1_000, (got.notAfter.getTime() - got.notBefore.getTime()) / 10)
        wait = Math.max(floor, got.renewAt.getTime() - Date.now())
      } catch (err) {
        if (signal.aborted) return
        // Anything that fails an attempt (a full disk, a foreign error from a library)
        // is retried like a refusal: renewal must never stop while the daemon runs.
        const failure = isMeshError(err)
          ? err
          : new AgentError('AGENT_ATTEMPT_FAILED', err instanceof Error ? err.message : String(err), {}, { cause: err })
        this.#failures++
        const initial = this.#o.retryInitialMs ?? 1_000
        const max = this.#o.retryMaxMs ?? 30_000
        let delay = Math.min(max, initial * 2 ** Math.min(failuresInRow, 20))
        delay = Math.round(delay * (0.5 + 0.5 * (this.#o.random ?? Math.random)()))
        // Holding a certificate that expires soon: do not sleep past most of what is left.
        const left = this.#current === undefined ? Infinity : this.#current.notAfter.getTime() - Date.now()
        if (left !== Infinity) delay = Math.max(Math.min(initial, delay), Math.min(delay, Math.floor(left / 4)))
        failuresInRow++
        const reason = String((failure.details as Record<string, unknown>)['reason'] ?? failure.code)
        const definitive = this.#current === undefined ? definitiveFailureReason(failure) : undefined
        if (definitive !== undefined) this.#o.onDefinitiveFailure?.(definitive)
        const fields = { code: failure.code, reason, details: failure.details, retryInMs: delay, failuresInRow, holding: this.#current?.serial ?? null }
        const msg =
          this.#current === undefined
            ? 'cannot obtain a mesh certificate; the pod stays closed; retrying'
            : 'cannot renew the mesh certificate; keeping the current one; retrying'
        // Same reason again: debug, so a long outage does not flood the log.
        if (reason === lastReason) this.#log.debug(fields, msg)
        else this.#log.warn({ ...fields, err: { message: failure.message } }, msg)
        lastReason = reason
        wait = delay
      }
      await sleep(wait, signal)
    }
  }
}

function sameCert(pemOrDer: Uint8Array, der: Buffer): boolean {
  try {
    return new X509Certificate(Buffer.from(pemOrDer)).raw.equals(der)
  } catch {
    return false
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    // Timers cap at ~24.8 days; renewals further out wake up early and sleep again.
    const t = setTimeout(done, Math.min(ms, 2 ** 31 - 1))
    function done(): void {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}

// ---- `podvm-mesh run` wiring ----

/**
 * Contrast's `/contrast/secrets/workload-secret-seed`: hex of the workload secret, 0400,
 * next to the TLS directory, for workloads that derive their keys from it.
 */
export const WORKLOAD_SECRET_FILE = 'workload-secret-seed'

export async function writeWorkloadSecret(tlsDir: string, secret: Uint8Array): Promise<string> {
  const dir = join(dirname(tlsDir), 'secrets')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, WORKLOAD_SECRET_FILE)
  await writeFileAtomic(path, Buffer.from(secret).toString('hex'), 0o400)
  return path
}

/** The field of our own evidence that carries the initdata digest. */
function measuredConfigField(evidence: Evidence): Uint8Array {
  return evidence.tee === 'tdx' ? parseTdxQuote(evidence.raw).body.mrConfigId : parseSnpReport(evidence.raw).hostData
}

export interface AttestedRun {
  readonly lifecycle: AttestedCertificates
  /**
   * Starts obtaining and renewing; idempotent. Call it once the baseline ruleset is in:
   * a connection opened before the baseline's conntrack rules exist has no conntrack
   * entry, and its replies would be dropped as new inbound traffic.
   */
  start(): void
  stop(): void
}

/**
 * From `run`'s flags: undefined without --coordinator (certificates come from files).
 * With it, the TLS directory is emptied of our four files first: only certificates this
 * boot attested for may open the pod.
 */
export async function startAttestedCertificates(
  values: {
    coordinator?: string | undefined
    'coordinator-identity'?: string | undefined
    'coordinator-measurement'?: readonly string[] | undefined
    evidence?: string | undefined
    'simulated-hostdata'?: string | undefined
  },
  ctx: { tlsDir: string; log: Logger; measuredConfigDigest?: Uint8Array; onDefinitiveFailure?: (reason: string) => void },
): Promise<AttestedRun | undefined> {
  if (values.coordinator === undefined) {
    requireCoordinatorForAttestedFlags(values)
    return undefined
  }
  if (!/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(values.coordinator)) {
    throw new AgentError('AGENT_BAD_ARGS', `--coordinator ${values.coordinator}: expected HOST:PORT`, { field: 'coordinator', value: values.coordinator })
  }
  if (values['coordinator-identity'] === undefined) {
    throw new AgentError('AGENT_BAD_ARGS', '--coordinator needs --coordinator-identity (never trust an unverified coordinator)', { field: 'coordinator-identity' })
  }
  const identity = parseCoordinatorIdentity(values['coordinator-identity'])
  const measurements = values['coordinator-measurement']?.map((m) => m.trim().toLowerCase())
  const bad = measurements?.find((m) => !/^[0-9a-f]{96}$/.test(m))
  if (bad !== undefined) {
    throw new AgentError('AGENT_BAD_ARGS', `--coordinator-measurement ${bad}: expected hex of 48 bytes`, { field: 'coordinator-measurement', value: bad })
  }
  const kind = values.evidence ?? 'auto'
  if (values['simulated-hostdata'] !== undefined && kind !== 'simulated') {
    throw new AgentError('AGENT_BAD_ARGS', '--simulated-hostdata needs --evidence simulated', { field: 'simulated-hostdata' })
  }
  const provider = await evidenceProvider(kind, { log: ctx.log, simulatedHostData: values['simulated-hostdata'] })
  for (const f of Object.values(TLS_FILES)) await rm(join(ctx.tlsDir, f), { force: true })
  const lifecycle = new AttestedCertificates({
    address: values.coordinator,
    identity,
    ...(measurements !== undefined ? { coordinatorMeasurements: measurements } : {}),
    provider,
    // A pod that itself runs without a TEE may talk to a simulated coordinator; a real one never.
    acceptSimulatedCoordinator: kind === 'simulated',
    tlsDir: ctx.tlsDir,
    log: ctx.log,
    ...(ctx.measuredConfigDigest !== undefined ? { measuredConfigDigest: ctx.measuredConfigDigest } : {}),
    ...(ctx.onDefinitiveFailure !== undefined ? { onDefinitiveFailure: ctx.onDefinitiveFailure } : {}),
  })
  const abort = new AbortController()
  let started = false
  return {
    lifecycle,
    start: () => {
      if (started || abort.signal.aborted) return
      started = true
      void lifecycle.run(abort.signal).catch((err: unknown) => ctx.log.error({ err }, 'certificate lifecycle stopped'))
    },
    stop: () => abort.abort(),
  }
}
