// What a TLS handshake shows on the wire, read from a tcpdump capture (pcap, Ethernet):
// per TCP connection, the ClientHello's SNI, and the server's answer — negotiated
// version, cipher suite, key-exchange group, whether a client certificate was asked for
// and (TLS 1.2, where it travels in clear) whether one was sent. Enough for end-to-end
// tests to state what two peers negotiated, from the bytes rather than from either peer.
// Assumes what a capture on a veth gives: no IP options beyond IPv4's IHL, no IPv6
// extension headers, segments in order (retransmissions are dropped by sequence number).

export interface TlsFlow {
  readonly client: string
  readonly server: string
  /** Server port, as the client dialled it. */
  readonly port: number
  readonly sni: string | undefined
  readonly clientHello: boolean
  /** 'TLSv1.2' | 'TLSv1.3' (from supported_versions), undefined without a ServerHello. */
  readonly version: string | undefined
  readonly cipher: string | undefined
  readonly group: string | undefined
  /**
   * The server resumed a session: TLS 1.2, its flight has no Certificate; TLS 1.3, its
   * ServerHello accepted a pre-shared key. A resumed handshake carries no certificates.
   */
  readonly resumed: boolean | undefined
  /** TLS 1.2 only (1.3 encrypts it): the server sent a CertificateRequest. */
  readonly certificateRequested: boolean | undefined
  /** TLS 1.2 only: the client's Certificate message carried this many certificates. */
  readonly clientCertificates: number | undefined
}

const CIPHERS: Record<number, string> = {
  0x1301: 'TLS_AES_128_GCM_SHA256',
  0x1302: 'TLS_AES_256_GCM_SHA384',
  0x1303: 'TLS_CHACHA20_POLY1305_SHA256',
  0xc02b: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  0xc02c: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  0xcca9: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  0xc02f: 'ECDHE-RSA-AES128-GCM-SHA256',
  0xc030: 'ECDHE-RSA-AES256-GCM-SHA384',
  0xcca8: 'ECDHE-RSA-CHACHA20-POLY1305',
}
const GROUPS: Record<number, string> = { 0x001d: 'X25519', 0x0017: 'P-256', 0x0018: 'P-384', 0x11ec: 'X25519MLKEM768' }
const name = (table: Record<number, string>, v: number): string => table[v] ?? `0x${v.toString(16).padStart(4, '0')}`

interface Segment {
  readonly src: string
  readonly dst: string
  readonly seq: number
  readonly syn: boolean
  readonly payload: Buffer
}

function ipv6(b: Buffer): string {
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16))
  return groups.join(':')
}

/** TCP segments of an Ethernet pcap (tcpdump -w), in capture order. */
function segments(pcap: Buffer): Segment[] {
  if (pcap.length < 24) return []
  const magic = pcap.readUInt32LE(0)
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d
  if (!le && pcap.readUInt32BE(0) !== 0xa1b2c3d4 && pcap.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('not a pcap file')
  const u32 = (o: number): number => (le ? pcap.readUInt32LE(o) : pcap.readUInt32BE(o))
  if (u32(20) !== 1) throw new Error(`pcap link type ${u32(20)}, expected Ethernet (1)`)
  const out: Segment[] = []
  for (let off = 24; off + 16 <= pcap.length; ) {
    const len = u32(off + 8)
    const frame = pcap.subarray(off + 16, off + 16 + len)
    off += 16 + len
    if (frame.length < 14) continue
    const type = frame.readUInt16BE(12)
    let src: string
    let dst: string
    let tcp: Buffer
    if (type === 0x0800) {
      const ip = frame.subarray(14)
      if (ip[9] !== 6) continue
      const ihl = (ip[0]! & 0x0f) * 4
      const total = ip.readUInt16BE(2)
      src = [...ip.subarray(12, 16)].join('.')
      dst = [...ip.subarray(16, 20)].join('.')
      tcp = ip.subarray(ihl, total)
    } else if (type === 0x86dd) {
      const ip = frame.subarray(14)
      if (ip[6] !== 6) continue
      src = ipv6(ip.subarray(8, 24))
      dst = ipv6(ip.subarray(24, 40))
      tcp = ip.subarray(40, 40 + ip.readUInt16BE(4))
    } else {
      continue
    }
    if (tcp.length < 20) continue
    const dataOffset = (tcp[12]! >> 4) * 4
    out.push({
      src: `${src}:${tcp.readUInt16BE(0)}`,
      dst: `${dst}:${tcp.readUInt16BE(2)}`,
      seq: tcp.readUInt32BE(4),
      syn: (tcp[13]! & 0x02) !== 0 && (tcp[13]! & 0x10) === 0,
      payload: tcp.subarray(dataOffset),
    })
  }
  return out
}

/** The handshake messages at the start of one direction's byte stream, up to the first non-handshake record. */
function handshakeMessages(stream: Buffer): { type: number; body: Buffer }[] {
  const hs: Buffer[] = []
  for (let o = 0; o + 5 <= stream.length; ) {
    const type = stream[o]!
    const len = stream.readUInt16BE(o + 3)
    // ChangeCipherSpec, application data (TLS 1.3's encrypted handshake), alerts: what
    // follows is encrypted or not a handshake.
    if (type !== 22) break
    hs.push(stream.subarray(o + 5, o + 5 + len))
    o += 5 + len
  }
  const all = Buffer.concat(hs)
  const out: { type: number; body: Buffer }[] = []
  for (let o = 0; o + 4 <= all.length; ) {
    const len = all.readUIntBE(o + 1, 3)
    out.push({ type: all[o]!, body: all.subarray(o + 4, o + 4 + len) })
    o += 4 + len
  }
  return out
}

/** Extensions of a hello, by type; `afterSession` skips the fields between session id and extensions. */
function extensions(body: Buffer, afterSession: (o: number) => number): Map<number, Buffer> {
  const out = new Map<number, Buffer>()
  let o = 2 + 32
  o += 1 + body[o]! // session id
  o = afterSession(o)
  if (o + 2 > body.length) return out
  const end = o + 2 + body.readUInt16BE(o)
  for (o += 2; o + 4 <= end; ) {
    const t = body.readUInt16BE(o)
    const l = body.readUInt16BE(o + 2)
    out.set(t, body.subarray(o + 4, o + 4 + l))
    o += 4 + l
  }
  return out
}

/** One entry per TCP connection in the capture that started with a TLS ClientHello. */
export function tlsFlows(pcap: Buffer): TlsFlow[] {
  const segs = segments(pcap)
  const streams = new Map<string, { data: Buffer[]; seen: Set<number> }>()
  const connections: { client: string; server: string }[] = []
  for (const s of segs) {
    if (s.syn) connections.push({ client: s.src, server: s.dst })
    if (s.payload.length === 0) continue
    const key = `${s.src}>${s.dst}`
    let st = streams.get(key)
    if (st === undefined) streams.set(key, (st = { data: [], seen: new Set() }))
    if (st.seen.has(s.seq)) continue
    st.seen.add(s.seq)
    st.data.push(s.payload)
  }
  const flows: TlsFlow[] = []
  for (const { client, server } of connections) {
    const up = Buffer.concat(streams.get(`${client}>${server}`)?.data ?? [])
    const down = Buffer.concat(streams.get(`${server}>${client}`)?.data ?? [])
    const cmsgs = handshakeMessages(up)
    const hello = cmsgs.find((m) => m.type === 1)
    if (hello === undefined) continue
    const cext = extensions(hello.body, (o) => {
      o += 2 + hello.body.readUInt16BE(o) // cipher suites
      return o + 1 + hello.body[o]! // compression methods
    })
    const sniExt = cext.get(0)
    const sni = sniExt === undefined ? undefined : sniExt.subarray(5, 5 + sniExt.readUInt16BE(3)).toString('latin1')
    const smsgs = handshakeMessages(down)
    const sh = smsgs.find((m) => m.type === 2)
    let version: string | undefined
    let cipher: string | undefined
    let group: string | undefined
    let certificateRequested: boolean | undefined
    let clientCertificates: number | undefined
    let resumed: boolean | undefined
    if (sh !== undefined) {
      const sidEnd = 2 + 32 + 1 + sh.body[34]!
      cipher = name(CIPHERS, sh.body.readUInt16BE(sidEnd))
      const sext = extensions(sh.body, (o) => o + 2 + 1)
      const sv = sext.get(43)
      const v = sv === undefined ? sh.body.readUInt16BE(0) : sv.readUInt16BE(0)
      version = v === 0x0304 ? 'TLSv1.3' : v === 0x0303 ? 'TLSv1.2' : `0x${v.toString(16)}`
      const ks = sext.get(51)
      if (ks !== undefined) group = name(GROUPS, ks.readUInt16BE(0))
      resumed = version === 'TLSv1.3' ? sext.has(41) : !smsgs.some((m) => m.type === 11)
      if (version === 'TLSv1.2' && !resumed) {
        // ServerKeyExchange: curve_type 3 (named_curve), then the group.
        const ske = smsgs.find((m) => m.type === 12)
        if (ske !== undefined && ske.body[0] === 3) group = name(GROUPS, ske.body.readUInt16BE(1))
        certificateRequested = smsgs.some((m) => m.type === 13)
        // The client's Certificate (type 11) precedes its ClientKeyExchange, in clear.
        const cert = cmsgs.find((m) => m.type === 11)
        if (cert !== undefined) {
          let n = 0
          const end = 3 + cert.body.readUIntBE(0, 3)
          for (let o = 3; o + 3 <= end; n++) o += 3 + cert.body.readUIntBE(o, 3)
          clientCertificates = n
        } else {
          clientCertificates = 0
        }
      }
    }
    flows.push({
      client,
      server,
      port: Number(server.slice(server.lastIndexOf(':') + 1)),
      sni,
      clientHello: true,
      version,
      cipher,
      group,
      resumed,
      certificateRequested,
      clientCertificates,
    })
  }
  return flows
}
