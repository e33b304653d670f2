// Test-only: evidence in the real SEV-SNP and TDX formats whose vendor root is swapped
// for a test root, so admission can be tested through the mesh API with chosen fields.
// SNP: the simulated provider's report and chain, sent as `Tee: 'snp'`. TDX: Intel's
// real v4 quote with body fields replaced, re-signed by a fresh attestation key whose
// QE report a test PCK chain signs.

import { createHash, createPrivateKey, sign, webcrypto, X509Certificate, type KeyObject } from 'node:crypto'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { SimulatedProvider, type Evidence, type SimulatedOptions } from '../../src/attestation/index.js'
import { parseTdxQuote } from '../../src/attestation/tdx/quote.js'
import { vector } from '../attestation/vectors.js'

const crypto = webcrypto as unknown as Crypto
x509.cryptoProvider.set(crypto)

/** Verification time for everything here (inside every test certificate's validity). */
export const TEST_AT = new Date('2026-06-01T00:00:00Z')

export interface SnpTestGuest {
  readonly root: X509Certificate
  evidence(reportData: Uint8Array): Promise<Evidence>
}

/** An SNP guest whose evidence claims to be real SNP and chains to a test ARK. */
export async function snpTestGuest(opts: SimulatedOptions): Promise<SnpTestGuest> {
  const p = await SimulatedProvider.create({ now: new Date('2026-01-01T00:00:00Z'), ...opts })
  return {
    root: new X509Certificate(Buffer.from(p.rootCertificate)),
    evidence: async (reportData) => ({ ...(await p.getEvidence(reportData)), tee: 'snp' as const }),
  }
}

export interface TdxFields {
  readonly mrConfigId?: Uint8Array
  readonly mrTd?: Uint8Array
  readonly rtmr?: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array]
  readonly tdAttributes?: Uint8Array
  readonly xfam?: Uint8Array
  /** QE report fields. */
  readonly qeIsvSvn?: number
  readonly qeAttributes?: Uint8Array
  readonly qeMiscSelect?: number
}

export interface TdxTestPlatform {
  readonly root: X509Certificate
  quote(reportData: Uint8Array, fields?: TdxFields): Uint8Array
  evidence(reportData: Uint8Array, fields?: TdxFields): Evidence
}

const V4_BODY = 0x30
const BODY = { tdAttributes: 0x078, xfam: 0x080, mrTd: 0x088, mrConfigId: 0x0b8, rtmr0: 0x148, reportData: 0x208 } as const
const QE = { miscSelect: 0x010, attributes: 0x030, isvSvn: 0x102, reportData: 0x140 } as const

const u16 = (n: number): Buffer => Buffer.from([n & 0xff, n >> 8])
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return b
}

async function p256(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair
}

async function privateKeyObject(k: CryptoKey): Promise<KeyObject> {
  return createPrivateKey({ key: Buffer.from(await crypto.subtle.exportKey('pkcs8', k)), format: 'der', type: 'pkcs8' })
}

/** A test PCK chain (root → platform CA → PCK, P-256) and a fresh attestation key. */
export async function tdxTestPlatform(): Promise<TdxTestPlatform> {
  const [rootKeys, caKeys, pckKeys, attKeys] = await Promise.all([p256(), p256(), p256(), p256()])
  const validity = { notBefore: new Date('2025-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z') }
  const alg = { name: 'ECDSA', hash: 'SHA-256' } as const
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=Test SGX Root CA', ...validity, keys: rootKeys, signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, 1, true)],
  })
  const ca = await x509.X509CertificateGenerator.create({
    serialNumber: '02', subject: 'CN=Test SGX PCK Platform CA', issuer: root.subject, ...validity, publicKey: caKeys.publicKey,
    signingKey: rootKeys.privateKey, signingAlgorithm: alg, extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  })
  const pck = await x509.X509CertificateGenerator.create({
    serialNumber: '03', subject: 'CN=Test SGX PCK Certificate', issuer: ca.subject, ...validity, publicKey: pckKeys.publicKey,
    signingKey: caKeys.privateKey, signingAlgorithm: alg,
  })
  const chainPem = Buffer.from([pck, ca, root].map((c) => c.toString('pem')).join('\n'))
  const pckKey = await privateKeyObject(pckKeys.privateKey)
  const attKey = await privateKeyObject(attKeys.privateKey)
  const jwk = await crypto.subtle.exportKey('jwk', attKeys.publicKey)
  const attPub = Buffer.concat([Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')])
  const template = parseTdxQuote(vector('tdx/tdx_prod_quote_SPR_E4.dat'))

  const quote = (reportData: Uint8Array, f: TdxFields = {}): Uint8Array => {
    const signed = Buffer.from(template.signedBytes)
    const put = (field: keyof typeof BODY, value: Uint8Array | undefined, offset = 0): void => {
      if (value !== undefined) signed.set(value, V4_BODY + BODY[field] + offset)
    }
    put('reportData', reportData)
    put('mrConfigId', f.mrConfigId)
    put('mrTd', f.mrTd)
    put('tdAttributes', f.tdAttributes)
    put('xfam', f.xfam)
    f.rtmr?.forEach((r, i) => put('rtmr0', r, 48 * i))
    const qe = Buffer.from(template.qeReportBytes)
    if (f.qeIsvSvn !== undefined) qe.writeUInt16LE(f.qeIsvSvn, QE.isvSvn)
    if (f.qeAttributes !== undefined) qe.set(f.qeAttributes, QE.attributes)
    if (f.qeMiscSelect !== undefined) qe.writeUInt32LE(f.qeMiscSelect, QE.miscSelect)
    qe.fill(0, QE.reportData, QE.reportData + 64)
    qe.set(createHash('sha256').update(attPub).update(template.qeAuthData).digest(), QE.reportData)
    const qeSig = sign('sha256', qe, { key: pckKey, dsaEncoding: 'ieee-p1363' })
    const quoteSig = sign('sha256', signed, { key: attKey, dsaEncoding: 'ieee-p1363' })
    const cert = Buffer.concat([qe, qeSig, u16(template.qeAuthData.byteLength), template.qeAuthData, u16(5), u32(chainPem.byteLength), chainPem])
    const sd = Buffer.concat([quoteSig, attPub, u16(6), u32(cert.byteLength), cert])
    return new Uint8Array(Buffer.concat([signed, u32(sd.byteLength), sd]))
  }
  return {
    root: new X509Certificate(Buffer.from(root.rawData)),
    quote,
    evidence: (reportData, f) => ({ tee: 'tdx', raw: quote(reportData, f), provider: 'configfs-tsm' }),
  }
}

/** A 32-byte policy hash as Kata puts it into MRCONFIGID: zero-padded to 48 bytes. */
export function mrConfigIdOf(hostHex: string): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.from(hostHex, 'hex'), Buffer.alloc(16)]))
}
