// Key pairs for mesh certificates, on WebCrypto alone: a pod that only asks for
// certificates needs no certificate builder (certificates.ts loads @peculiar/x509).

import { webcrypto } from 'node:crypto'

const crypto = webcrypto as unknown as Crypto

export type Curve = 'P-256' | 'P-384'

export interface KeyPairPem {
  readonly keys: CryptoKeyPair
  /** PKCS#8 PEM (`PRIVATE KEY`), as Contrast writes key.pem. */
  readonly privateKeyPem: string
}

export async function generateKeyPair(curve: Curve = 'P-256'): Promise<KeyPairPem> {
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey))
  const lines = pkcs8.toString('base64').match(/.{1,64}/g) ?? []
  return { keys, privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n` }
}
