// Evidence for machines without a TEE: an SEV-SNP-shaped report (version 3,
// 0x4A0 bytes) signed like a real one (ECDSA P-384/SHA-384 over [0:0x2A0),
// R and S little-endian in 72-byte fields) by a "VCEK" that chains to a
// locally generated root whose name says it is not a TEE. The real SNP
// verifier accepts it only when told to trust that root, and then reports it
// as simulated. Nothing here is secret or attested: it exists so the mesh can
// run, and be tested, end to end on ordinary machines.

import { randomBytes, webcrypto } from 'node:crypto'
import 'reflect-metadata' // @peculiar/x509 resolves its ASN.1 schemas through tsyringe, which needs it first
import * as x509 from '@peculiar/x509'
import type { Logger } from 'pino'
import { checkAborted, checkReportDataSize, type Evidence, type EvidenceProvider, type GetEvidenceOptions } from '../provider.js'
import { ProviderError } from './errors.js'

const crypto = webcrypto as unknown as Crypto
x509.cryptoProvider.set(crypto)

export const SIMULATED_ROOT_CN = 'podvm-mesh SIMULATED root - NOT A TEE'
const SIMULATED_O = 'podvm-mesh SIMULATED - NOT A TEE'

const P384 = { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' } as const
const DAY_MS = 24 * 60 * 60 * 1000

// Report layout offsets (attestation.md §1) that the simulation fills.
const R = {
  size: 0x4a0,
  signed: 0x2a0,
  version: 0x000,
  policy: 0x008,
  vmpl: 0x030,
  signatureAlgo: 0x034,
  currentTcb: 0x038,
  platformInfo: 0x040,
  reportData: 0x050,
  measurement: 0x090,
  hostData: 0x0c0,
  reportId: 0x140,
  reportIdMa: 0x160,
  reportedTcb: 0x180,
  cpuid: 0x188,
  chipId: 0x1a0,
  committedTcb: 0x1e0,
  currentVersion: 0x1e8,
  committedVersion: 0x1ec,
  launchTcb: 0x1f0,
  sigR: 0x2a0,
  sigS: 0x2a0 + 0x48,
} as const

/** Milan-shaped platform facts, consistent between report and VCEK extensions. */
const PLATFORM = {
  productName: 'Milan-B0',
  cpuid: [0x19, 0x01, 0x01], // family, model, stepping
  tcb: { bl: 3, tee: 0, snp: 8, ucode: 115 },
  firmware: [21, 55, 1], // build, minor, major
} as const

/** POLICY: ABI 0.0, SMT allowed (bit 16), reserved bit 17 set as required; debug off. */
const DEFAULT_POLICY = (1n << 17n) | (1n << 16n)

export interface SimulatedOptions {
  readonly log?: Logger
  /** HOST_DATA, 32 bytes (Kata: the initdata digest). Default zero. */
  readonly hostData?: Uint8Array
  /** MEASUREMENT, 48 bytes. Default zero. */
  readonly measurement?: Uint8Array
  /** VMPL, 0-3. Default 0. */
  readonly vmpl?: number
  /** POLICY. Default 0x30000 (SMT allowed, debug off). */
  readonly policy?: bigint
  /** Start of certificate validity (tests pin it). Default now. */
  readonly now?: Date
}

export class SimulatedProvider implements EvidenceProvider {
  readonly kind = 'simulated' as const
  /** The simulated root (DER): a verifier must be given it explicitly to accept this evidence. */
  readonly rootCertificate: Uint8Array
  readonly rootCertificatePem: string
  /** The simulated VCEK (DER) that signs reports. */
  readonly vcek: Uint8Array
  /** [intermediate, root] DER, in the order a verifier wants (ASK then ARK). */
  readonly chain: readonly [Uint8Array, Uint8Array]
  readonly chipId: Uint8Array
  readonly #vcekKey: CryptoKey
  readonly #hostData: Uint8Array
  readonly #measurement: Uint8Array
  readonly #vmpl: number
  readonly #policy: bigint
  readonly #log: Logger | undefined

  private constructor(init: {
    root: x509.X509Certificate
    ask: x509.X509Certificate
    vcek: x509.X509Certificate
    vcekKey: CryptoKey
    chipId: Uint8Array
    hostData: Uint8Array
    measurement: Uint8Array
    vmpl: number
    policy: bigint
    log: Logger | undefined
  }) {
    this.rootCertificate = new Uint8Array(init.root.rawData)
    this.rootCertificatePem = init.root.toString('pem')
    this.vcek = new Uint8Array(init.vcek.rawData)
    this.chain = [new Uint8Array(init.ask.rawData), this.rootCertificate]
    this.chipId = init.chipId
    this.#vcekKey = init.vcekKey
    this.#hostData = init.hostData
    this.#measurement = init.measurement
    this.#vmpl = init.vmpl
    this.#policy = init.policy
    this.#log = init.log
  }

  /** Generates a fresh root, intermediate and VCEK (P-384 each). */
  static async create(opts: SimulatedOptions = {}): Promise<SimulatedProvider> {
    const hostData = fixed(opts.hostData, 32, 'hostData')
    const measurement = fixed(opts.measurement, 48, 'measurement')
    const vmpl = opts.vmpl ?? 0
    if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) {
      throw new ProviderError('PROVIDER_BAD_INPUT', `vmpl ${vmpl} not in 0-3`, { field: 'vmpl', value: vmpl })
    }
    const policy = opts.policy ?? DEFAULT_POLICY
    if (policy < 0n || policy >= 1n << 64n) {
      throw new ProviderError('PROVIDER_BAD_INPUT', `policy ${policy} does not fit in 64 bits`, { field: 'policy', value: policy.toString() })
    }
    const now = opts.now ?? new Date()
    const notBefore = new Date(now.getTime() - DAY_MS)
    const chipId = new Uint8Array(randomBytes(64))

    const [rootKeys, askKeys, vcekKeys] = await Promise.all([genKey(), genKey(), genKey()])
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=${SIMULATED_ROOT_CN}, O=${SIMULATED_O}`,
      notBefore,
      notAfter: new Date(notBefore.getTime() + 25 * 365 * DAY_MS),
      signingAlgorithm: P384,
      keys: rootKeys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    })
    const ask = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=podvm-mesh SIMULATED intermediate - NOT A TEE, O=${SIMULATED_O}`,
      issuer: root.subject,
      notBefore,
      notAfter: new Date(notBefore.getTime() + 25 * 365 * DAY_MS),
      signingAlgorithm: P384,
      publicKey: askKeys.publicKey,
      signingKey: rootKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ],
    })
    const { bl, tee, snp, ucode } = PLATFORM.tcb
    // Subject CN is the one verifiers use to tell a VCEK from a VLEK; the O says what it really is.
    const vcek = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=SEV-VCEK, O=${SIMULATED_O}`,
      issuer: ask.subject,
      notBefore,
      notAfter: new Date(notBefore.getTime() + 7 * 365 * DAY_MS),
      signingAlgorithm: P384,
      publicKey: vcekKeys.publicKey,
      signingKey: askKeys.privateKey,
      extensions: [
        amdExtension('1', derInteger(1)),
        amdExtension('2', derIa5(PLATFORM.productName)),
        amdExtension('3.1', derInteger(bl)),
        amdExtension('3.2', derInteger(tee)),
        amdExtension('3.3', derInteger(snp)),
        amdExtension('3.4', derInteger(0)),
        amdExtension('3.5', derInteger(0)),
        amdExtension('3.6', derInteger(0)),
        amdExtension('3.7', derInteger(0)),
        amdExtension('3.8', derInteger(ucode)),
        amdExtension('4', chipId), // raw, as in AMD's Milan certificates
      ],
    })
    return new SimulatedProvider({ root, ask, vcek, vcekKey: vcekKeys.privateKey, chipId, hostData, measurement, vmpl, policy, log: opts.log?.child({ component: 'attestation', provider: 'simulated' }) })
  }

  async getEvidence(reportData: Uint8Array, opts: GetEvidenceOptions = {}): Promise<Evidence> {
    checkReportDataSize(reportData)
    checkAborted(opts.signal, this.kind)
    const report = this.#buildReport(reportData)
    const sig = new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, this.#vcekKey, report.subarray(0, R.signed)))
    // WebCrypto gives r‖s big-endian, 48 bytes each; the firmware writes each little-endian in 72.
    report.set(sig.subarray(0, 48).reverse(), R.sigR)
    report.set(sig.subarray(48, 96).reverse(), R.sigS)
    this.#log?.warn({ tee: 'simulated-snp' }, 'issuing SIMULATED evidence: no TEE backs it')
    return { tee: 'simulated-snp', raw: report, certs: { vcek: this.vcek, chain: [...this.chain] }, provider: this.kind }
  }

  #buildReport(reportData: Uint8Array): Uint8Array {
    const report = new Uint8Array(R.size)
    const v = new DataView(report.buffer)
    const { bl, tee, snp, ucode } = PLATFORM.tcb
    const tcb = (BigInt(ucode) << 56n) | (BigInt(snp) << 48n) | (BigInt(tee) << 8n) | BigInt(bl)
    v.setUint32(R.version, 3, true)
    v.setBigUint64(R.policy, this.#policy, true)
    v.setUint32(R.vmpl, this.#vmpl, true)
    v.setUint32(R.signatureAlgo, 1, true) // ECDSA P-384 with SHA-384
    for (const at of [R.currentTcb, R.reportedTcb, R.committedTcb, R.launchTcb]) v.setBigUint64(at, tcb, true)
    v.setBigUint64(R.platformInfo, 1n, true) // SMT enabled
    report.set(reportData, R.reportData)
    report.set(this.#measurement, R.measurement)
    report.set(this.#hostData, R.hostData)
    report.set(randomBytes(32), R.reportId)
    report.fill(0xff, R.reportIdMa, R.reportIdMa + 32) // no migration agent
    report.set(PLATFORM.cpuid, R.cpuid)
    report.set(this.chipId, R.chipId)
    report.set(PLATFORM.firmware, R.currentVersion)
    report.set(PLATFORM.firmware, R.committedVersion)
    return report
  }
}

async function genKey(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as CryptoKeyPair
}

function serial(): string {
  // Positive (top bit clear), non-zero, 16 bytes.
  const b = randomBytes(16)
  b[0] = (b[0]! & 0x7f) | 0x01
  return b.toString('hex')
}

function fixed(value: Uint8Array | undefined, size: number, field: string): Uint8Array {
  if (value === undefined) return new Uint8Array(size)
  if (value.byteLength !== size) {
    throw new ProviderError('PROVIDER_BAD_INPUT', `${field} must be ${size} B, got ${value.byteLength}`, { field, length: value.byteLength, expected: size })
  }
  return Uint8Array.from(value)
}

function amdExtension(arc: string, value: Uint8Array): x509.Extension {
  return new x509.Extension(`1.3.6.1.4.1.3704.1.${arc}`, false, value)
}

/** DER INTEGER for 0..255 (the range of SPLs). */
function derInteger(n: number): Uint8Array {
  return n < 0x80 ? Uint8Array.from([0x02, 0x01, n]) : Uint8Array.from([0x02, 0x02, 0x00, n])
}

function derIa5(s: string): Uint8Array {
  return Uint8Array.from([0x16, s.length, ...Buffer.from(s, 'ascii')])
}
