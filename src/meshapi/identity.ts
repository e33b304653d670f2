// How a pod names the coordinator it trusts. Apart from pin.ts, which checks evidence
// against it, so that reading a flag or a measured config loads no verifier.

export type CoordinatorIdentity =
  /** The coordinator's policy hash (initdata digest) as its evidence must report it. */
  | { readonly kind: 'policy-hash'; readonly hex: string }
  /** SHA-256 of the coordinator's root CA certificate (DER). */
  | { readonly kind: 'root-ca'; readonly sha256: string }

/**
 * `policy:HEX` / bare HEX (32, 48 or 64 bytes) = policy hash; `root-ca:HEX` (32 bytes) =
 * root fingerprint. Undefined for anything else.
 */
export function parseCoordinatorIdentity(text: string): CoordinatorIdentity | undefined {
  const t = text.trim().toLowerCase()
  const at = t.indexOf(':')
  // Fingerprints are often printed with colons between bytes (AB:CD:…): drop them.
  const [prefix, value] = at < 0 ? ['policy', t] : [t.slice(0, at), t.slice(at + 1).replaceAll(':', '')]
  if (prefix === 'root-ca' && /^[0-9a-f]{64}$/.test(value)) return { kind: 'root-ca', sha256: value }
  if (prefix === 'policy' && /^(?:[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$/.test(value)) return { kind: 'policy-hash', hex: value }
  return undefined
}
