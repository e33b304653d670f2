// Building certificates: CAs and mesh leaves, on WebCrypto via @peculiar/x509.
// Profile as Contrast's mesh PKI: CA certs with CertSign, leaves with CN = first SAN,
// DigitalSignature, EKU client+server auth. P-256 by default: a P-384 CA roughly
// halves the handshake rate (see performance.md).

import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto'
import { isIP } from 'node:net'
// @peculiar/x509 resolves its ASN.1 schemas through tsyringe, which needs the Reflect
// metadata API; the polyfill must load before the library.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { generateKeyPair, type Curve } from './keys.js'

const crypto = webcrypto as unknown as Crypto
x509.cryptoProvider.set(crypto)

const HASH: Record<Curve, string> = { 'P-256': 'SHA-256', 'P-384': 'SHA-384' }

export interface Authority {
  readonly certificate: x509.X509Certificate
  readonly certificatePem: string
  readonly keys: CryptoKeyPair
  readonly curve: Curve
}

export interface IssuedLeaf {
  readonly certificatePem: string
  readonly notAfter: Date
}

// Newline-terminated, so that PEM files can be concatenated into chains and bundles.
function pem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem').trimEnd()}\n`
}

function randomSerial(): string {
  const bytes = new Uint8Array(16)
  crypto.getRandomValues(bytes)
  bytes[0] = bytes[0]! & 0x7f // positive INTEGER
  return Buffer.from(bytes).toString('hex')
}

export interface AuthorityOptions {
  readonly commonName: string
  readonly curve?: Curve
  readonly notBefore?: Date
  readonly notAfter?: Date
  /** Signed by this authority (an intermediate); self-signed when absent. */
  readonly issuer?: Authority
  /** Reuse an existing key pair (e.g. a mesh CA cross-signed by the root). */
  readonly keys?: CryptoKeyPair
}

export async function createAuthority(opts: AuthorityOptions): Promise<Authority> {
  const curve = opts.curve ?? 'P-256'
  const keys = opts.keys ?? (await generateKeyPair(curve)).keys
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60 * 60 * 1000)
  const notAfter = opts.notAfter ?? new Date(notBefore.getTime() + 10 * 365 * 24 * 60 * 60 * 1000)
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ]
  const signer = opts.issuer
  const signingCurve = signer?.curve ?? curve
  const signingAlgorithm = { name: 'ECDSA', hash: HASH[signingCurve] }
  const name = `CN=${opts.commonName}`
  let certificate: x509.X509Certificate
  if (signer === undefined) {
    certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm,
      extensions,
    })
  } else {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(signer.certificate))
    certificate = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: name,
      issuer: signer.certificate.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: signer.keys.privateKey,
      signingAlgorithm,
      extensions,
    })
  }
  return { certificate, certificatePem: pem(certificate), keys, curve }
}

/**
 * The mesh CA as Contrast builds it: one mesh key, certified twice under one subject —
 * self-signed (`mesh-ca.pem`, what peers trust) and signed by the root (the
 * intermediate sent after the leaf in `certChain.pem`). A leaf then validates against
 * the mesh CA of the current manifest, or against the root across manifests. OpenSSL
 * (and so Node 20) cannot anchor trust in a non-self-signed CA, which is why peers
 * trust the self-signed twin rather than the intermediate.
 */
export async function createMeshAuthority(opts: {
  readonly root: Authority
  readonly commonName: string
  readonly curve?: Curve
  readonly notBefore?: Date
  readonly notAfter?: Date
}): Promise<{ readonly meshCa: Authority; readonly intermediate: Authority }> {
  const keys = (await generateKeyPair(opts.curve ?? 'P-256')).keys
  const common = { commonName: opts.commonName, keys, curve: opts.curve ?? 'P-256', notBefore: opts.notBefore, notAfter: opts.notAfter }
  const meshCa = await createAuthority(common)
  const intermediate = await createAuthority({ ...common, issuer: opts.root })
  return { meshCa, intermediate }
}

/** An extension as it goes into the certificate: OID, criticality, DER of its value. */
export interface RawExtension {
  readonly oid: string
  readonly critical: boolean
  readonly der: Uint8Array
}

export interface LeafOptions {
  /** DNS names, IP literals and URIs (`spiffe://…`), split into the right SAN types. */
  readonly sans: readonly string[]
  readonly publicKey: CryptoKey
  readonly notBefore?: Date
  readonly lifetimeMs?: number
  /** Appended after the profile's own (tests: the attestation claims Contrast's leaves carry). */
  readonly extraExtensions?: readonly RawExtension[]
}

export function sanEntries(sans: readonly string[]): x509.JsonGeneralName[] {
  return sans.map((s) => {
    if (isIP(s) !== 0) return { type: 'ip', value: s }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return { type: 'url', value: s }
    return { type: 'dns', value: s }
  })
}

export async function issueLeaf(ca: Authority, opts: LeafOptions): Promise<IssuedLeaf> {
  if (opts.sans.length === 0) throw new RangeError('a mesh leaf needs at least one SAN')
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60 * 60 * 1000)
  const notAfter = new Date(notBefore.getTime() + (opts.lifetimeMs ?? 24 * 60 * 60 * 1000))
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${opts.sans[0]}`,
    issuer: ca.certificate.subject,
    notBefore,
    notAfter,
    publicKey: opts.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: HASH[ca.curve] },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(sanEntries(opts.sans)),
      await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
      ...(opts.extraExtensions ?? []).map((e) => new x509.Extension(e.oid, e.critical, e.der)),
    ],
  })
  return { certificatePem: pem(cert), notAfter }
}

/** Node's view of a PEM certificate, for chain and SAN checks. */
export function toNodeCertificate(pem: string): NodeX509 {
  return new NodeX509(pem)
}
