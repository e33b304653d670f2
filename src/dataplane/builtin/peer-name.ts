// Secure naming: the upstream's certificate must name the host we meant to reach.
// DNS answers are not trusted, so chaining to the mesh CA is not enough — any mesh
// workload could otherwise answer for any name.
//
// Rules: an IP literal must be an IP SAN; a DNS name must be a DNS SAN, compared
// exactly (case-insensitively). The subject CN is never consulted. Wildcard SANs
// are not honoured: mesh certificates name workloads exactly, and a wildcard
// issued to one workload must not let it answer for its siblings.

import type { X509Certificate } from 'node:crypto'
import net from 'node:net'

/** Strips the IPv4-mapped prefix a dual-stack socket reports (`::ffff:10.0.0.1`). */
export function unmapAddress(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address
}

export function isIpLiteral(host: string): boolean {
  return net.isIP(host) !== 0
}

export function certificateNames(cert: X509Certificate): string {
  return cert.subjectAltName ?? ''
}

/** True when `cert` carries `name` as an IP SAN (IP literal) or an exact DNS SAN. */
export function certificateHasName(cert: X509Certificate, name: string): boolean {
  if (isIpLiteral(name)) return cert.checkIP(name) !== undefined
  return cert.checkHost(name, { subject: 'never', wildcards: false, partialWildcards: false }) !== undefined
}
