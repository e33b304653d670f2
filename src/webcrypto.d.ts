// @peculiar/x509's declarations name the DOM's WebCrypto types; Node provides the same
// objects under node:crypto's `webcrypto`. Alias them instead of pulling in lib "DOM".
import type { webcrypto } from 'node:crypto'

declare global {
  type Crypto = webcrypto.Crypto
  type CryptoKey = webcrypto.CryptoKey
  type CryptoKeyPair = webcrypto.CryptoKeyPair
  type Algorithm = webcrypto.Algorithm
  type EcdsaParams = webcrypto.EcdsaParams
  type BufferSource = webcrypto.BufferSource
}
