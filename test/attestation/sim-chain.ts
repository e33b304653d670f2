// Test-only: a locally generated SNP-shaped chain (ARK → ASK → VCEK with AMD's
// extensions) and report re-signing, so tests can change one report field and
// still present a valid signature, isolating the check under test.

import { createPrivateKey, KeyObject, sign, webcrypto, X509Certificate } from 'node:crypto'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { AMD_OID } from '../../src/attestation/snp/vcek.js'

const crypto = webcrypto as unknown as Crypto
x509.cryptoProvider.set(crypto)

const ECDSA_P384 = { name: 'ECDSA', namedCurve: 'P-384' } as const
const SIGN_P384 = { name: 'ECDSA', hash: 'SHA-384' } as const

export function derInt(n: number): Uint8Array {
  const bytes: number[] = []
  let v = n
  do {
    bytes.unshift(v & 0xff)
    v = Math.floor(v / 256)
  } while (v > 0)
  if ((bytes[0]! & 0x80) !== 0) bytes.unshift(0)
  return Uint8Array.from([0x02, bytes.length, ...bytes])
}

export function derIa5(s: string): Uint8Array {
  return Uint8Array.from([0x16, s.length, ...Buffer.from(s, 'ascii')])
}

export interface VcekSpec {
  readonly subjectCn?: string
  readonly productName?: string | undefined
  readonly bl?: number
  readonly tee?: number
  readonly snp?: number
  readonly ucode?: number
  readonly fmc?: number
  readonly hwId?: Uint8Array | undefined
  /** Extra or replacement raw extension values by OID. */
  readonly raw?: Record<string, Uint8Array>
  readonly curve?: 'P-384' | 'P-256'
  readonly notBefore?: Date
  readonly notAfter?: Date
}

export interface SimChain {
  readonly ark: X509Certificate
  readonly ask: X509Certificate
  readonly vcek: X509Certificate
  readonly vcekKey: KeyObject
}

async function keys(curve: 'P-384' | 'P-256' = 'P-384'): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, true, ['sign', 'verify'])) as CryptoKeyPair
}

const NOT_BEFORE = new Date('2024-01-01T00:00:00Z')
const NOT_AFTER = new Date('2034-01-01T00:00:00Z')

export async function simChain(product: string, spec: VcekSpec = {}): Promise<SimChain> {
  const arkKeys = await keys()
  const askKeys = await keys()
  const vcekKeys = await keys(spec.curve)
  const ark = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=ARK-${product}, O=Simulated`,
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    keys: arkKeys,
    signingAlgorithm: SIGN_P384,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  })
  const ask = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: `CN=SEV-${product}, O=Simulated`,
    issuer: ark.subject,
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    publicKey: askKeys.publicKey,
    signingKey: arkKeys.privateKey,
    signingAlgorithm: SIGN_P384,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  })
  const ext: Record<string, Uint8Array> = {}
  if (spec.productName !== undefined) ext[AMD_OID.productName] = derIa5(spec.productName)
  if (spec.bl !== undefined) ext[AMD_OID.blSpl] = derInt(spec.bl)
  if (spec.tee !== undefined) ext[AMD_OID.teeSpl] = derInt(spec.tee)
  if (spec.snp !== undefined) ext[AMD_OID.snpSpl] = derInt(spec.snp)
  if (spec.ucode !== undefined) ext[AMD_OID.ucodeSpl] = derInt(spec.ucode)
  if (spec.fmc !== undefined) ext[AMD_OID.fmcSpl] = derInt(spec.fmc)
  if (spec.hwId !== undefined) ext[AMD_OID.hwId] = spec.hwId
  Object.assign(ext, spec.raw ?? {})
  const vcek = await x509.X509CertificateGenerator.create({
    serialNumber: '00',
    subject: `CN=${spec.subjectCn ?? 'SEV-VCEK'}, O=Simulated`,
    issuer: ask.subject,
    notBefore: spec.notBefore ?? NOT_BEFORE,
    notAfter: spec.notAfter ?? NOT_AFTER,
    publicKey: vcekKeys.publicKey,
    signingKey: askKeys.privateKey,
    signingAlgorithm: SIGN_P384,
    extensions: Object.entries(ext).map(([oid, value]) => new x509.Extension(oid, false, value)),
  })
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', vcekKeys.privateKey)
  return {
    ark: new X509Certificate(Buffer.from(ark.rawData)),
    ask: new X509Certificate(Buffer.from(ask.rawData)),
    vcek: new X509Certificate(Buffer.from(vcek.rawData)),
    vcekKey: createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }),
  }
}

/** A copy of `report` with its signature replaced by one from `key` (R, S little-endian in 72-byte fields). */
export function resignSnp(report: Uint8Array, key: KeyObject): Uint8Array {
  const out = Uint8Array.from(report)
  const sig = sign('sha384', out.subarray(0, 0x2a0), { key, dsaEncoding: 'ieee-p1363' })
  out.fill(0, 0x2a0)
  out.set(Uint8Array.from(sig.subarray(0, 48)).reverse(), 0x2a0)
  out.set(Uint8Array.from(sig.subarray(48, 96)).reverse(), 0x2a0 + 0x48)
  return out
}

export { ECDSA_P384 }

/** A self-signed CA certificate with the given subject CN (P-256, ECDSA-SHA256). */
export async function selfSignedP256(cn: string): Promise<{ cert: X509Certificate; pem: string }> {
  const k = await keys('P-256')
  const c = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${cn}, O=Intel Corporation, L=Santa Clara, ST=CA, C=US`,
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    keys: k,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.BasicConstraintsExtension(true, 1, true)],
  })
  return { cert: new X509Certificate(Buffer.from(c.rawData)), pem: c.toString('pem') }
}
