// Sealing keys for the coordinator's state at rest. The state holds the CA private keys
// and the manifest; the host stores the file, so it is encrypted and authenticated
// (AES-256-GCM, state.ts) under a key the host cannot obtain:
//
// - snp-derived-key: SEV-SNP's MSG_KEY_REQ through /dev/sev-guest (SNP_GET_DERIVED_KEY),
//   rooted in the chip's VCEK secret and mixed with the guest policy and launch
//   measurement: only this image, under this policy, on this chip, derives it.
// - key-file: 32 bytes the operator provides (TDX has no guest sealing key; a key broker
//   or a Kubernetes secret must supply one, and is then what the state's secrecy rests on).
// - simulated: a key kept next to the state, for the simulated TEE only. It detects
//   corruption; it protects nothing from whoever can read the directory.

import { closeSync, existsSync, openSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { CoordinatorError } from './errors.js'

export type SealerKind = 'snp-derived-key' | 'key-file' | 'simulated'

export interface StateSealer {
  readonly kind: SealerKind
  /** What the key is bound to; authenticated with the state, so a file sealed otherwise is refused. */
  readonly params: Readonly<Record<string, string | number>>
  /** The 32-byte sealing key (the state key is derived from it). */
  key(): Promise<Uint8Array>
}

const KEY_BYTES = 32

function stateError(message: string, details: Record<string, unknown>, cause?: unknown): CoordinatorError {
  return new CoordinatorError('COORDINATOR_STATE_INVALID', message, details, cause === undefined ? undefined : { cause })
}

/** A key from a file: 32 raw bytes, or 64 hex characters (a trailing newline is fine). */
export async function keyFileSealer(path: string): Promise<StateSealer> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (cause) {
    throw stateError(`state key ${path} cannot be read`, { path }, cause)
  }
  const text = bytes.toString('latin1').trim()
  const key = bytes.byteLength === KEY_BYTES ? bytes : /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : undefined
  if (key === undefined) {
    throw stateError(`state key ${path}: expected ${KEY_BYTES} bytes, raw or as 64 hex characters (got ${bytes.byteLength} bytes)`, { path, length: bytes.byteLength })
  }
  return { kind: 'key-file', params: {}, key: async () => Uint8Array.from(key) }
}

export const SIMULATED_KEY_FILE = 'state-key.SIMULATED-NOT-SECRET'

/** The simulated TEE's "sealing": a random key stored next to the state (created once). */
export async function simulatedSealer(stateDir: string): Promise<StateSealer> {
  const path = join(stateDir, SIMULATED_KEY_FILE)
  await mkdir(stateDir, { recursive: true, mode: 0o700 })
  let key: Buffer
  try {
    key = Buffer.from((await readFile(path, 'utf8')).trim(), 'hex')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw stateError(`${path} cannot be read`, { path }, err)
    key = randomBytes(KEY_BYTES)
    await writeFile(path, key.toString('hex'), { mode: 0o600, flag: 'wx' })
  }
  if (key.byteLength !== KEY_BYTES) throw stateError(`${path}: not a ${KEY_BYTES}-byte hex key`, { path })
  return { kind: 'simulated', params: {}, key: async () => Uint8Array.from(key) }
}

// <linux/sev-guest.h>: _IOWR('S', 0x1, struct snp_guest_request_ioctl).
export const SNP_GET_DERIVED_KEY = 0xc0205301
export const SEV_GUEST_DEVICE = '/dev/sev-guest'
// GUEST_FIELD_SELECT (SEV-SNP firmware ABI, MSG_KEY_REQ): which guest fields are mixed in.
const FIELD = { guestPolicy: 1n << 0n, imageId: 1n << 1n, familyId: 1n << 2n, measurement: 1n << 3n, guestSvn: 1n << 4n, tcbVersion: 1n << 5n } as const
// Policy and measurement, not the TCB: a firmware update must not lose the CA. (The chip
// key root already ties the key to this machine.)
const SEALING_FIELDS = FIELD.guestPolicy | FIELD.measurement

/** struct snp_derived_key_req: root_key_select, rsvd, guest_field_select, vmpl, guest_svn, tcb_version. */
export function snpDerivedKeyRequest(opts: { vmpl: number }): Buffer {
  const req = Buffer.alloc(32)
  req.writeUInt32LE(0, 0) // root key: VCEK (1 would be the VM root key of a migration agent)
  req.writeBigUInt64LE(SEALING_FIELDS, 8)
  req.writeUInt32LE(opts.vmpl, 16)
  return req
}

type Koffi = typeof import('koffi').default
interface Libc {
  koffi: Koffi
  ioctl: (fd: number, request: number, arg: Buffer) => number
  memcpy: (dst: Buffer, src: unknown, n: number) => unknown
}
let libc: Libc | undefined
// koffi (FFI) is loaded only when a derived key is asked for: a coordinator on a simulated
// TEE or with a key file never touches it.
async function loadLibc(): Promise<Libc> {
  if (libc !== undefined) return libc
  const koffi = (await import('koffi')).default
  const lib = koffi.load('libc.so.6')
  libc = {
    koffi,
    ioctl: lib.func('int ioctl(int fd, unsigned long request, void *arg)') as Libc['ioctl'],
    memcpy: lib.func('void *memcpy(void *dst, const void *src, size_t n)') as Libc['memcpy'],
  }
  return libc
}

function errnoName(koffi: Koffi, errno: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) if (value === errno) return name
  return `errno ${errno}`
}

/**
 * SNP's derived key. Untested without SEV-SNP hardware: the tests cover the request
 * encoding and the failure path on a file that is no sev-guest device.
 */
export function snpDerivedKeySealer(opts: { device?: string; vmpl?: number } = {}): StateSealer {
  const device = opts.device ?? SEV_GUEST_DEVICE
  const vmpl = opts.vmpl ?? 0
  let cached: Uint8Array | undefined
  const unavailable = (message: string, details: Record<string, unknown>, cause?: unknown): CoordinatorError =>
    new CoordinatorError('COORDINATOR_SEALING_KEY_UNAVAILABLE', message, { device, ...details }, cause === undefined ? undefined : { cause })
  return {
    kind: 'snp-derived-key',
    params: { rootKey: 'vcek', fields: 'guestPolicy,measurement', vmpl },
    key: async () => {
      if (cached !== undefined) return cached
      const c = await loadLibc()
      const koffi = c.koffi
      let fd: number
      try {
        fd = openSync(device, 'r+')
      } catch (cause) {
        throw unavailable(`${device} cannot be opened: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, {}, cause)
      }
      const req = koffi.alloc('uint8_t', 32)
      const resp = koffi.alloc('uint8_t', 64)
      try {
        koffi.encode(req, koffi.array('uint8_t', 32), [...snpDerivedKeyRequest({ vmpl })])
        koffi.encode(resp, koffi.array('uint8_t', 64), new Array<number>(64).fill(0))
        // struct snp_guest_request_ioctl: msg_version u8 (1), req_data u64 @8, resp_data u64 @16, exitinfo2 u64 @24.
        const arg = Buffer.alloc(32)
        arg.writeUInt8(1, 0)
        arg.writeBigUInt64LE(BigInt(koffi.address(req)), 8)
        arg.writeBigUInt64LE(BigInt(koffi.address(resp)), 16)
        if (c.ioctl(fd, SNP_GET_DERIVED_KEY, arg) !== 0) {
          const errno = errnoName(koffi, koffi.errno())
          throw unavailable(`SNP_GET_DERIVED_KEY on ${device} failed: ${errno} (firmware error 0x${arg.readUInt32LE(24).toString(16)}, VMM error 0x${arg.readUInt32LE(28).toString(16)})`, {
            errno,
            fwError: arg.readUInt32LE(24),
            vmmError: arg.readUInt32LE(28),
          })
        }
        // MSG_KEY_RSP: status u32 @0, reserved to 0x20, derived key (32 B) @0x20.
        const out = Buffer.alloc(64)
        c.memcpy(out, resp, 64)
        const status = out.readUInt32LE(0)
        if (status !== 0) throw unavailable(`SNP_GET_DERIVED_KEY: firmware status 0x${status.toString(16)}`, { status })
        cached = Uint8Array.from(out.subarray(0x20, 0x40))
        return cached
      } finally {
        koffi.free(req)
        koffi.free(resp)
        closeSync(fd)
      }
    },
  }
}

/**
 * The sealer for a coordinator: an explicit key file wins; simulated evidence gets the
 * simulated sealer; on SEV-SNP the derived key. Anything else (TDX, which has no guest
 * sealing key) must be given a key file: the state is never written unsealed.
 */
export async function chooseSealer(opts: { stateDir: string; stateKeyPath?: string | undefined; evidence: string; device?: string }): Promise<StateSealer> {
  if (opts.stateKeyPath !== undefined) return keyFileSealer(opts.stateKeyPath)
  if (opts.evidence === 'simulated') return simulatedSealer(opts.stateDir)
  const device = opts.device ?? SEV_GUEST_DEVICE
  if (existsSync(device)) return snpDerivedKeySealer({ device })
  throw new CoordinatorError(
    'COORDINATOR_SEALING_KEY_UNAVAILABLE',
    `no sealing key for the state: ${device} is absent (TDX has no guest sealing key); pass --state-key FILE`,
    { device, evidence: opts.evidence },
  )
}
