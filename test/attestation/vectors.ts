// Attestation test vectors, kept in vectors/ so tests need nothing outside the repository (provenance: vectors/README.md).

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export function vector(name: string): Uint8Array {
  return new Uint8Array(readFileSync(fileURLToPath(new URL(`vectors/${name}`, import.meta.url))))
}

export function vectorPath(name: string): string {
  return fileURLToPath(new URL(`vectors/${name}`, import.meta.url))
}

/** A copy with `bytes[offset] ^= mask`. */
export function flip(bytes: Uint8Array, offset: number, mask = 0x01): Uint8Array {
  const out = Uint8Array.from(bytes)
  out[offset] = out[offset]! ^ mask
  return out
}

export const AT = new Date('2026-06-01T00:00:00Z')
