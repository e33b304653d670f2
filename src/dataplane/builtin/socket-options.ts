// The two socket options Node's net module cannot set: IP(V6)_TRANSPARENT on a
// listening socket (so nft `tproxy` may hand it connections addressed elsewhere),
// and SO_MARK on the mesh's own outbound sockets (so the ruleset never captures
// them). Both need CAP_NET_ADMIN; both go through koffi to libc.

import net from 'node:net'
import koffi from 'koffi'
import { DataPlaneError } from '../errors.js'

// Linux constants (include/uapi/linux/in.h, in6.h, asm-generic/socket.h).
const AF_INET = 2
const AF_INET6 = 10
const SOCK_STREAM = 1
const SOCK_NONBLOCK = 0o4000
const SOCK_CLOEXEC = 0o2000000
const SOL_SOCKET = 1
const SO_MARK = 36
const SOL_IP = 0
const IP_TRANSPARENT = 19
const SOL_IPV6 = 41
const IPV6_TRANSPARENT = 75

export type IpFamily = 4 | 6

interface Libc {
  socket(domain: number, type: number, protocol: number): number
  setsockopt(fd: number, level: number, name: number, value: Buffer, length: number): number
  close(fd: number): number
}

let libc: Libc | undefined

// Loaded on first use, once: a daemon that never needs transparency or marks
// (tests, or a pod without ingress) never touches the FFI.
function loadLibc(): Libc {
  if (libc !== undefined) return libc
  try {
    const lib = koffi.load('libc.so.6')
    libc = {
      socket: lib.func('int socket(int domain, int type, int protocol)'),
      setsockopt: lib.func('int setsockopt(int fd, int level, int optname, const void *optval, uint32_t optlen)'),
      close: lib.func('int close(int fd)'),
    }
    return libc
  } catch (cause) {
    throw new DataPlaneError('DATAPLANE_FFI', 'cannot load libc.so.6 through koffi', {}, { cause })
  }
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) if (value === errno) return name
  return `errno ${errno}`
}

function setIntOption(fd: number, level: number, name: number, value: number, option: string): void {
  const c = loadLibc()
  const buf = Buffer.alloc(4)
  buf.writeInt32LE(value)
  if (c.setsockopt(fd, level, name, buf, 4) !== 0) {
    const errno = koffi.errno()
    throw new DataPlaneError('DATAPLANE_SOCKOPT', `setsockopt(${fd}, ${option}) failed: ${errnoName(errno)}`, {
      fd,
      option,
      errno: errnoName(errno),
    })
  }
}

/**
 * Marks a bound socket transparent. IPv6 sockets get IPV6_TRANSPARENT, which sets the
 * same kernel flag as IP_TRANSPARENT, so a dual-stack socket is covered for both families.
 */
export function setTransparent(fd: number, family: IpFamily): void {
  if (family === 4) setIntOption(fd, SOL_IP, IP_TRANSPARENT, 1, 'IP_TRANSPARENT')
  else setIntOption(fd, SOL_IPV6, IPV6_TRANSPARENT, 1, 'IPV6_TRANSPARENT')
}

/** Sets IP(V6)_TRANSPARENT on the socket behind a listening net.Server. */
export function setServerTransparent(server: net.Server, family: IpFamily): void {
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd
  if (typeof fd !== 'number' || fd < 0) {
    throw new DataPlaneError('DATAPLANE_SOCKOPT', 'listening server has no file descriptor', { option: 'TRANSPARENT' })
  }
  setTransparent(fd, family)
}

/**
 * An unconnected TCP socket with SO_MARK set, wrapped in a net.Socket; call
 * `.connect()` on it. The fd is created non-blocking and close-on-exec; it is
 * closed here if anything fails before Node owns it.
 */
export function createMarkedSocket(family: IpFamily, mark: number): net.Socket {
  const c = loadLibc()
  const fd = c.socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
  if (fd < 0) {
    const errno = koffi.errno()
    throw new DataPlaneError('DATAPLANE_SOCKET', `socket(AF_INET${family === 6 ? '6' : ''}) failed: ${errnoName(errno)}`, {
      family,
      errno: errnoName(errno),
    })
  }
  try {
    setIntOption(fd, SOL_SOCKET, SO_MARK, mark, 'SO_MARK')
    // allowHalfOpen: the proxy decides when to end each direction.
    return new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true })
  } catch (err) {
    c.close(fd)
    throw err
  }
}
