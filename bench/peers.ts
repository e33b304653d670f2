// Configuration of the peer TLS proxies, rendered from the same ports and the same
// certificate files as the mesh: the client side originates mTLS (verifies the server
// chain against the mesh CA and its name), the server side terminates it and requires
// a client certificate from the mesh CA.

export interface PeerFiles {
  /** The mesh CA the peer trusts. */
  readonly ca: string
  /** Certificate chain (leaf first). */
  readonly chain: string
  readonly key: string
  /** chain ‖ key in one file, as HAProxy's `crt` takes it. */
  readonly combined: string
}

/** One forwarded port: the client side listens on `listen`, the server side on `wire`. */
export interface PeerRoute {
  readonly name: string
  readonly listen: number
  readonly wire: number
  /** Server side: the application port behind the terminator (on 127.0.0.1). */
  readonly app: number
  /** Client side: never resume TLS sessions on this route. */
  readonly noResume?: boolean
}

export interface PeerSide {
  readonly files: PeerFiles
  readonly routes: readonly PeerRoute[]
  /** Server pod address (the wire hop's destination). */
  readonly serverIp: string
  /** Name the client side expects in the server certificate. */
  readonly serverName: string
}

// Single-threaded like the mesh's Node event loop, so CPU per unit of work compares one
// worker with one worker; both sides share the machine's two cores with the load.
const HAPROXY_HEADER = [
  'global',
  '  nbthread 1',
  '  maxconn 4000',
  '  log stderr format raw local0 err',
  'defaults',
  '  mode tcp',
  '  timeout connect 5s',
  '  timeout client 60s',
  '  timeout server 60s',
] as const

export function haproxyClient(s: PeerSide): string {
  const lines: string[] = [...HAPROXY_HEADER]
  for (const r of s.routes) {
    lines.push(
      `listen ${r.name}`,
      `  bind 127.0.0.1:${r.listen}`,
      `  server up ${s.serverIp}:${r.wire} ssl crt ${s.files.combined} ca-file ${s.files.ca} verify required verifyhost ${s.serverName} sni str(${s.serverName})${r.noResume === true ? ' no-ssl-reuse' : ''}`,
    )
  }
  return `${lines.join('\n')}\n`
}

export function haproxyServer(s: PeerSide): string {
  const lines: string[] = [...HAPROXY_HEADER]
  const seen = new Set<number>()
  for (const r of s.routes) {
    if (seen.has(r.wire)) continue
    seen.add(r.wire)
    lines.push(
      `listen wire${r.wire}`,
      `  bind ${s.serverIp}:${r.wire} ssl crt ${s.files.combined} ca-file ${s.files.ca} verify required`,
      `  server app 127.0.0.1:${r.app}`,
    )
  }
  return `${lines.join('\n')}\n`
}

const STUNNEL_GLOBAL = [
  'foreground = yes',
  'pid =',
  'syslog = no',
  'debug = 3',
  // stunnel leaves Nagle on unless told; every other configuration runs with TCP_NODELAY.
  'socket = l:TCP_NODELAY=1',
  'socket = r:TCP_NODELAY=1',
]

export function stunnelClient(s: PeerSide): string {
  const lines = [...STUNNEL_GLOBAL]
  for (const r of s.routes) {
    lines.push(
      `[${r.name}]`,
      'client = yes',
      `accept = 127.0.0.1:${r.listen}`,
      `connect = ${s.serverIp}:${r.wire}`,
      `cert = ${s.files.chain}`,
      `key = ${s.files.key}`,
      `CAfile = ${s.files.ca}`,
      'verifyChain = yes',
      `checkHost = ${s.serverName}`,
      `sni = ${s.serverName}`,
      `sessionResume = ${r.noResume === true ? 'no' : 'yes'}`,
    )
  }
  return `${lines.join('\n')}\n`
}

export function stunnelServer(s: PeerSide): string {
  const lines = [...STUNNEL_GLOBAL]
  const seen = new Set<number>()
  for (const r of s.routes) {
    if (seen.has(r.wire)) continue
    seen.add(r.wire)
    lines.push(
      `[wire${r.wire}]`,
      `accept = ${s.serverIp}:${r.wire}`,
      `connect = 127.0.0.1:${r.app}`,
      `cert = ${s.files.chain}`,
      `key = ${s.files.key}`,
      `CAfile = ${s.files.ca}`,
      'verifyChain = yes',
      'requireCert = yes',
    )
  }
  return `${lines.join('\n')}\n`
}
