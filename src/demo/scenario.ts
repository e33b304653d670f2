// The demo topology and configuration, shared by `podvm-mesh demo` and test/e2e:
//   A  mesh pod; its app dials B through the egress address 127.137.0.1:8080
//   B  mesh pod; app on 8080 (mTLS), 8443 (`#false`: TLS, no client cert), 7890 (`#true`)
//   C  no mesh; an outsider, and (as db.mesh.test) an impostor TLS server on 5432
//      whose certificate is from the mesh CA but for another name.

export const APP_PORTS = { mtls: 8080, tls: 8443, plain: 7890 } as const
export const IMPOSTOR_PORT = 5432

export const NODES = ['a', 'b', 'c'] as const
export const HOSTS: Readonly<Record<string, readonly string[]>> = {
  a: ['a.mesh.test'],
  b: ['b.mesh.test'],
  c: ['c.mesh.test', 'db.mesh.test'],
}

export const B_INGRESS = `public#${APP_PORTS.tls}#false##plain#${APP_PORTS.plain}#true`
export const A_EGRESS_B = '127.137.0.1'
export const A_EGRESS_DB = '127.137.0.2'
export const A_EGRESS = `b#${A_EGRESS_B}:${APP_PORTS.mtls}#b.mesh.test:${APP_PORTS.mtls}##db#${A_EGRESS_DB}:${IMPOSTOR_PORT}#db.mesh.test:${IMPOSTOR_PORT}`

/** SANs per node: its name and its addresses (the coordinator adds the pod IP likewise). */
export function sansFor(node: { name: string; ipv4: string; ipv6: string }): string[] {
  return [`${node.name}.mesh.test`, node.ipv4, node.ipv6]
}
