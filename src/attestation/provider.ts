// The guest side of attestation: something that, given 64 bytes of report
// data, returns TEE evidence binding them. Providers differ in how they reach
// the TEE (configfs-tsm, the CoCo attestation agent, or a simulation); the
// Evidence they return is one normalized shape the coordinator can verify.

import { createHash } from 'node:crypto'
import { ProviderError } from './providers/errors.js'
import { REPORT_DATA_BYTES } from './verifier.js'

export { REPORT_DATA_BYTES }

export type EvidenceProviderKind = 'configfs-tsm' | 'attestation-agent' | 'simulated'

/**
 * What produced `raw`. `simulated-snp` is SNP-shaped but signed by a local,
 * non-AMD root: a verifier must be told explicitly to trust that root.
 */
export type EvidenceTee = 'snp' | 'tdx' | 'simulated-snp'

export interface EvidenceCerts {
  /** The VCEK (DER) when the report was signed by a VCEK. */
  readonly vcek?: Uint8Array
  /** The VLEK (DER) when the report was signed by a VLEK. */
  readonly vlek?: Uint8Array
  /** Issuers of the VCEK/VLEK, leaf-side first: [ASK (or ASVK), ARK], DER. */
  readonly chain?: readonly Uint8Array[]
}

export interface Evidence {
  readonly tee: EvidenceTee
  /** SNP/simulated-snp: the 0x4A0-byte ATTESTATION_REPORT; TDX: the full quote (it embeds its PCK chain). */
  readonly raw: Uint8Array
  /** SNP only, when the platform supplied them (auxblob / AA cert_chain / simulation). */
  readonly certs?: EvidenceCerts
  /** TDX via the attestation agent: the CC event log, when it sent one. */
  readonly eventLog?: Uint8Array
  /** Which provider produced it, for logs and for refusing simulated evidence by policy. */
  readonly provider: EvidenceProviderKind
}

export interface GetEvidenceOptions {
  readonly signal?: AbortSignal
}

export interface EvidenceProvider {
  readonly kind: EvidenceProviderKind
  /** `reportData` must be exactly 64 bytes; it becomes REPORT_DATA verbatim. */
  getEvidence(reportData: Uint8Array, opts?: GetEvidenceOptions): Promise<Evidence>
}

/**
 * The binding every mesh evidence uses (as Contrast does):
 * REPORT_DATA = SHA-512(PKIX DER public key ‖ nonce), all 64 bytes.
 */
export function bindReportData(publicKeyDer: Uint8Array, nonce: Uint8Array): Uint8Array {
  if (publicKeyDer.byteLength === 0) {
    throw new ProviderError('PROVIDER_BAD_INPUT', 'public key is empty', { field: 'publicKeyDer', length: 0 })
  }
  if (nonce.byteLength === 0) {
    throw new ProviderError('PROVIDER_BAD_INPUT', 'nonce is empty', { field: 'nonce', length: 0 })
  }
  return new Uint8Array(createHash('sha512').update(publicKeyDer).update(nonce).digest())
}

/** Providers call this first: anything but 64 bytes is a caller bug, not something to pad. */
export function checkReportDataSize(reportData: Uint8Array): void {
  if (!(reportData instanceof Uint8Array) || reportData.byteLength !== REPORT_DATA_BYTES) {
    const length = reportData instanceof Uint8Array ? reportData.byteLength : undefined
    throw new ProviderError('PROVIDER_BAD_INPUT', `report data must be ${REPORT_DATA_BYTES} B, got ${length ?? typeof reportData}`, {
      field: 'reportData',
      length,
      expected: REPORT_DATA_BYTES,
    })
  }
}

/** Throws PROVIDER_ABORTED if the signal already fired. */
export function checkAborted(signal: AbortSignal | undefined, provider: EvidenceProviderKind): void {
  if (signal?.aborted) {
    throw new ProviderError('PROVIDER_ABORTED', `${provider}: evidence request aborted`, { provider }, { cause: signal.reason })
  }
}
