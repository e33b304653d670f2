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

import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import { bindReportData, parseSnpReport, parseTdxQuote, type Evidence, type EvidenceProvider } from '../attestation/index.js'
import { checkInitdataDigest } from '../config/index.js'
import { checkMeshCertAnswer, connectMeshApi, evidenceToWire, verifyCoordinator, type CoordinatorIdentity } from '../meshapi/index.js'
import { isMeshError } from '../errors.js'
import { generateKeyPair, splitPemCertificates, writeFileAtomic, writeTlsDir } from '../pki/index.js'
import { Renewal, type BackoffOptions } from './renewal.js'

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

export interface AttestedCertificatesOptions extends BackoffOptions {
  readonly address: string
  readonly identity: CoordinatorIdentity
  /**
   * Launch measurements (SNP MEASUREMENT / TDX MRTD, hex) the coordinator's evidence must
   * report. Required with a policy-hash pin on real hardware: HOST_DATA / MRCONFIGID is
   * chosen by whoever launches the VM, so on its own it says nothing about the code.
   */
  readonly coordinatorMeasurements?: readonly string[]
  /** TDX: `<index>=<hex>` RTMR pins of the coordinator (RTMR1, RTMR2 required with a policy pin). */
  readonly coordinatorRtmr?: readonly string[] | undefined
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
  readonly callTimeoutMs?: number
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
  readonly #renewal: Renewal
  #current: ObtainedCertificate | undefined

  constructor(opts: AttestedCertificatesOptions) {
    this.#o = opts
    this.#log = opts.log.child({ component: 'attested-certs', coordinator: opts.address })
    this.#renewal = new Renewal({
      ...opts,
      log: this.#log,
      obtain: (signal) => this.obtain(signal),
      onFailure: (failure, holding) => {
        const definitive = holding ? undefined : definitiveFailureReason(failure)
        if (definitive !== undefined) opts.onDefinitiveFailure?.(definitive)
      },
    })
  }

  get current(): ObtainedCertificate | undefined {
    return this.#current
  }

  /** Failed attempts of `run`. */
  get failures(): number {
    return this.#renewal.failures
  }

  /** One full exchange; throws a typed error naming the failed step. Writes nothing on failure. */
  async obtain(signal?: AbortSignal): Promise<ObtainedCertificate> {
    const o = this.#o
    const conn = await connectMeshApi(o.address, { timeoutMs: o.callTimeoutMs, signal })
    try {
      const clientNonce = randomBytes(32)
      const ch = await conn.challenge({ ClientNonce: clientNonce })
      const coordinator = verifyCoordinator(
        { answer: ch, clientNonce, tlsRoot: conn.root, tlsKeys: conn.serverKeys(), at: new Date() },
        { identity: o.identity, measurements: o.coordinatorMeasurements, rtmr: o.coordinatorRtmr, acceptSimulated: o.acceptSimulatedCoordinator },
      )
      this.#log.debug({ tee: coordinator.tee, rootSha256: coordinator.rootSha256 }, 'coordinator verified')

      const kp = await generateKeyPair('P-256')
      const spki = new Uint8Array(await globalThis.crypto.subtle.exportKey('spki', kp.keys.publicKey))
      const evidence = await o.provider.getEvidence(bindReportData(spki, ch.Nonce), { signal })
      if (o.measuredConfigDigest !== undefined) checkInitdataDigest(o.measuredConfigDigest, measuredConfigField(evidence))
      const res = await conn.newMeshCert({ Nonce: ch.Nonce, PublicKey: spki, Evidence: evidenceToWire(evidence) })
      const { material, info } = checkMeshCertAnswer(res, coordinator, kp.privateKeyPem)
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

  /** Obtains, then renews until `signal` aborts (renewal.ts). Never throws for a failed attempt. */
  run(signal: AbortSignal): Promise<void> {
    return this.#renewal.run(signal)
  }
}

/**
 * Contrast's `/contrast/secrets/workload-secret-seed`: hex of the workload secret, 0400,
 * next to the TLS directory, for workloads that derive their keys from it.
 */
export const WORKLOAD_SECRET_FILE = 'workload-secret-seed'

export async function writeWorkloadSecret(tlsDir: string, secret: Uint8Array): Promise<string> {
  const dir = join(dirname(tlsDir), 'secrets')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, WORKLOAD_SECRET_FILE)
  writeFileAtomic(path, Buffer.from(secret).toString('hex'), 0o400)
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

/** Runs `lifecycle` from `start()` until `stop()`. */
export function attestedRun(lifecycle: AttestedCertificates, log: Logger): AttestedRun {
  const abort = new AbortController()
  let started = false
  return {
    lifecycle,
    start: () => {
      if (started || abort.signal.aborted) return
      started = true
      void lifecycle.run(abort.signal).catch((err: unknown) => log.error({ err }, 'certificate lifecycle stopped'))
    },
    stop: () => abort.abort(),
  }
}
