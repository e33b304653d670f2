// The pod's side of mutual attestation: what makes a coordinator trustworthy. Pure
// checks on what one exchange showed (the TLS chain and keys, the Challenge answer, the
// NewMeshCert answer) against the pin from measured config or flags. The client
// (client.ts) only moves bytes; agent/attested-certs.ts runs the exchange.

import { createHash, X509Certificate } from 'node:crypto'
import { toHex } from '../attestation/index.js'
import { checkTlsMaterial, splitPemCertificates, type TlsMaterial, type TlsMaterialInfo } from '../pki/index.js'
import { isMeshApiError, MeshApiError } from './errors.js'
import { checkEvidence, wireToEvidence, type CheckedEvidence, type EvidenceCheckOptions } from './evidence.js'
import { RTMR_PIN } from '../config/rtmr-pin.js'
import type { CoordinatorIdentity } from './identity.js'
import type { ChallengeResponse, NewMeshCertResponse } from './proto.js'

/**
 * A policy hash names a configuration that whoever launches the VM may set; only a
 * launch measurement names the code. On real hardware the pin must carry both (labs
 * with simulated evidence prove nothing either way and are exempt).
 */
export function requireMeasurementPin(measurements: readonly string[] | undefined, tee: string, rtmr?: readonly string[]): void {
  if (measurements === undefined && tee !== 'simulated') {
    throw new MeshApiError(
      'COORDINATOR_UNTRUSTED',
      'a policy-hash pin needs the coordinator measurements too (HOST_DATA/MRCONFIGID is chosen by the host at launch); pin --coordinator-measurement, or root-ca:',
      { step: 'identity', tee },
    )
  }
  // A TD's MRTD measures only its firmware; the kernel (RTMR1) and its command line and
  // initrd (RTMR2) are what the firmware loaded.
  const pinned = new Set(Object.keys(rtmrAllowLists(rtmr)))
  if (tee === 'tdx' && !(pinned.has('1') && pinned.has('2'))) {
    throw new MeshApiError(
      'COORDINATOR_UNTRUSTED',
      'a TDX coordinator pinned by policy hash needs RTMR1 (kernel) and RTMR2 (command line, initrd) pinned too; MRTD names only the firmware: pin --coordinator-rtmr 1=<hex> and 2=<hex>',
      { step: 'identity', tee, rtmrPinned: [...pinned] },
    )
  }
}

/** `<index>=<hex>` pins as allow-lists per RTMR index. */
export function rtmrAllowLists(pins: readonly string[] | undefined): Partial<Record<'0' | '1' | '2' | '3', string[]>> {
  const out: Partial<Record<'0' | '1' | '2' | '3', string[]>> = {}
  for (const p of pins ?? []) {
    const m = RTMR_PIN.exec(p)
    if (m === null) continue
    const i = m[1] as '0' | '1' | '2' | '3'
    ;(out[i] ??= []).push(m[2]!)
  }
  return out
}

/** The pinned digest as the TEE field holds it: zero-padded or truncated (as Kata does). */
function pinAsField(hex: string, size: number): string {
  const b = Buffer.alloc(size)
  Buffer.from(hex, 'hex').copy(b, 0, 0, size)
  return b.toString('hex')
}

export interface CoordinatorPin {
  readonly identity: CoordinatorIdentity
  /**
   * Launch measurements (SNP MEASUREMENT / TDX MRTD, hex) the coordinator's evidence must
   * report. Required with a policy-hash pin on real hardware: HOST_DATA / MRCONFIGID is
   * chosen by whoever launches the VM, so on its own it says nothing about the code.
   */
  readonly measurements?: readonly string[] | undefined
  /** TDX: `<index>=<hex>` RTMR pins; with a policy-hash pin RTMR1 and RTMR2 are required. */
  readonly rtmr?: readonly string[] | undefined
  /** Accept a coordinator whose evidence is simulated (only with our own simulated evidence). */
  readonly acceptSimulated: boolean
  /** Test roots in place of AMD's and Intel's (EvidenceCheckOptions.vendorRoots); tests only. */
  readonly vendorRoots?: EvidenceCheckOptions['vendorRoots']
}

/** What the channel showed during one Challenge. */
export interface ChallengeSeen {
  readonly answer: ChallengeResponse
  readonly clientNonce: Uint8Array
  /** The root the TLS chain ended in. */
  readonly tlsRoot: X509Certificate
  /** Every TLS server key the channel proved. */
  readonly tlsKeys: readonly Buffer[]
  readonly at: Date
}

export interface VerifiedCoordinator {
  readonly tee: CheckedEvidence['tee']
  readonly rootSha256: string
  readonly rootDer: Buffer
}

/**
 * Believe nothing the coordinator says before this passes: its evidence is genuine, bound
 * to the TLS key this channel proved and our nonce, and matches the pin.
 */
export function verifyCoordinator(seen: ChallengeSeen, pin: CoordinatorPin): VerifiedCoordinator {
  const rootDer = seen.tlsRoot.raw
  const keys = seen.tlsKeys
  if (keys.length !== 1) {
    throw new MeshApiError('COORDINATOR_UNTRUSTED', `saw ${keys.length} TLS keys during the challenge; cannot tell which one the evidence binds`, { keys: keys.length })
  }
  if (!sameCert(seen.answer.RootCACert, rootDer)) {
    throw new MeshApiError('COORDINATOR_UNTRUSTED', 'the root in Challenge is not the root of the TLS chain', { step: 'root' })
  }
  // The coordinator's evidence: genuine, bound to the TLS key this channel proved.
  let checked
  try {
    const measurements = pin.measurements
    checked = checkEvidence(wireToEvidence(seen.answer.Evidence), {
      publicKeyDer: keys[0]!,
      nonce: seen.clientNonce,
      at: seen.at,
      acceptSimulated: pin.acceptSimulated,
      vendorRoots: pin.vendorRoots,
      referenceValues:
        measurements === undefined && pin.rtmr === undefined
          ? undefined
          : { snp: { measurements }, tdx: { mrTd: measurements, rtmr: rtmrAllowLists(pin.rtmr) } },
    })
  } catch (err) {
    if (!isMeshApiError(err)) throw err
    throw new MeshApiError('COORDINATOR_UNTRUSTED', `coordinator evidence: ${err.message}`, { step: 'evidence', reason: err.code, ...err.details }, { cause: err })
  }
  const rootSha256 = createHash('sha256').update(rootDer).digest('hex')
  if (pin.identity.kind === 'root-ca' && rootSha256 !== pin.identity.sha256) {
    throw new MeshApiError('COORDINATOR_UNTRUSTED', `coordinator root ${rootSha256} is not the pinned ${pin.identity.sha256}`, { step: 'identity', rootSha256 })
  }
  if (pin.identity.kind === 'policy-hash') {
    requireMeasurementPin(pin.measurements, checked.tee, pin.rtmr)
    const reported = toHex(checked.policyHash)
    const want = pinAsField(pin.identity.hex, checked.policyHash.byteLength)
    if (reported !== want) {
      throw new MeshApiError('COORDINATOR_UNTRUSTED', `coordinator policy hash ${reported} is not the pinned ${want}`, { step: 'identity', reported, pinned: want })
    }
  }
  return { tee: checked.tee, rootSha256, rootDer }
}

/**
 * The NewMeshCert answer, from a verified coordinator: its root is the one verified, the
 * chain is usable with our key, and the intermediate is the root's (a leaf the root never
 * vouched for is not the coordinator's).
 */
export function checkMeshCertAnswer(
  res: NewMeshCertResponse,
  coordinator: VerifiedCoordinator,
  privateKeyPem: string,
): { material: TlsMaterial & { readonly rootCa: string }; info: TlsMaterialInfo } {
  if (!sameCert(res.RootCACert, coordinator.rootDer)) {
    throw new MeshApiError('COORDINATOR_UNTRUSTED', 'RootCACert in NewMeshCert is not the verified root', { step: 'response' })
  }
  const material = {
    meshCa: Buffer.from(res.MeshCACert).toString('utf8'),
    certChain: Buffer.from(res.CertChain).toString('utf8'),
    key: privateKeyPem,
    rootCa: Buffer.from(res.RootCACert).toString('utf8'),
  }
  try {
    const info = checkTlsMaterial(material)
    const chain = splitPemCertificates(material.certChain)
    const root = new X509Certificate(coordinator.rootDer)
    if (chain.length < 2 || !chain[1]!.verify(root.publicKey)) throw new Error('the intermediate is not signed by the root')
    return { material, info }
  } catch (cause) {
    throw new MeshApiError('COORDINATOR_UNTRUSTED', `NewMeshCert answer unusable: ${(cause as Error).message}`, { step: 'response' }, { cause })
  }
}

function sameCert(pemOrDer: Uint8Array, der: Buffer): boolean {
  try {
    return new X509Certificate(Buffer.from(pemOrDer)).raw.equals(der)
  } catch {
    return false
  }
}
