import os from 'node:os'
import { describe, expect, it } from 'vitest'
import {
  LOCAL_ADDRESSES_MAX_AGE_MS,
  LOCAL_ADDRESSES_MISS_REFRESH_MS,
  LocalAddresses,
} from '../../../src/dataplane/builtin/local-addresses.js'

type Ifaces = NodeJS.Dict<os.NetworkInterfaceInfo[]>

const v4 = (address: string, prefix: number, internal = false): os.NetworkInterfaceInfo => ({
  address,
  netmask: '',
  family: 'IPv4',
  mac: '00:00:00:00:00:00',
  internal,
  cidr: `${address}/${prefix}`,
})
const v6 = (address: string, prefix: number, internal = false): os.NetworkInterfaceInfo => ({
  address,
  netmask: '',
  family: 'IPv6',
  mac: '00:00:00:00:00:00',
  internal,
  cidr: `${address}/${prefix}`,
  scopeid: 0,
})

/** A pod as kata-agent leaves it: lo, and eth0 with a v4, a v6 and a link-local address. */
const POD: Ifaces = {
  lo: [v4('127.0.0.1', 8, true), v6('::1', 128, true)],
  eth0: [v4('10.244.1.7', 24), v6('fd00:10:244:1::7', 64), v6('fe80::a8bb:ccff:fedd:eeff', 64)],
}

function fixed(ifaces: Ifaces) {
  let reads = 0
  return { reader: () => (reads++, ifaces), reads: () => reads }
}

describe('LocalAddresses', () => {
  it('the pod’s own addresses are local, IPv4-mapped ones too; other addresses are not', () => {
    const l = new LocalAddresses({ reader: fixed(POD).reader })
    for (const a of ['10.244.1.7', '::ffff:10.244.1.7', '::FFFF:10.244.1.7', 'fd00:10:244:1::7', 'fd00:10:244:1:0:0:0:7']) {
      expect(l.isLocal(a), a).toBe(true)
    }
    // A neighbour on the same subnet, the subnet itself, its broadcast, another pod's v6.
    for (const a of ['10.244.1.8', '::ffff:10.244.1.8', '10.244.1.0', '10.244.1.255', 'fd00:10:244:1::8', '0.0.0.0', '::', '', 'b.mesh']) {
      expect(l.isLocal(a), a).toBe(false)
    }
  })

  it('loopback is never a destination from the network: 127.0.0.0/8 and ::1 are refused, mapped too', () => {
    const l = new LocalAddresses({ reader: fixed(POD).reader })
    expect(['127.0.0.1', '127.9.8.7', '::ffff:127.0.0.53', '::1'].map((a) => l.isLocal(a))).toEqual([false, false, false, false])
    expect(['128.0.0.1', '::2'].map((a) => l.isLocal(a))).toEqual([false, false])
  })

  it('link-local: only with the scope of the interface that holds it', () => {
    const l = new LocalAddresses({ reader: fixed(POD).reader })
    expect(l.isLocal('fe80::a8bb:ccff:fedd:eeff%eth0')).toBe(true)
    expect(l.isLocal('fe80::a8bb:ccff:fedd:eeff')).toBe(false)
    expect(l.isLocal('fe80::a8bb:ccff:fedd:eeff%eth1')).toBe(false)
    // Another host's link-local address on the same link is not ours.
    expect(l.isLocal('fe80::1%eth0')).toBe(false)
    expect(l.isLocal('10.244.1.7%eth0')).toBe(false)
  })

  it('an address added after start (kata-agent) is found at once: a miss reads the interfaces again', () => {
    let now = 0
    const ifaces: Ifaces = { lo: POD.lo }
    const src = fixed(ifaces)
    const l = new LocalAddresses({ reader: src.reader, now: () => now })
    expect(l.isLocal('10.244.1.7')).toBe(false)
    ifaces.eth0 = POD.eth0
    now += LOCAL_ADDRESSES_MISS_REFRESH_MS
    expect(l.isLocal('10.244.1.7')).toBe(true)
    expect(src.reads()).toBe(2)
  })

  it('misses re-read at most every MISS_REFRESH_MS; hits use the snapshot until MAX_AGE_MS', () => {
    let now = 0
    const src = fixed(POD)
    const l = new LocalAddresses({ reader: src.reader, now: () => now })
    for (let i = 0; i < 100; i++) l.isLocal('192.0.2.1')
    expect(src.reads()).toBe(1)
    for (let i = 0; i < 100; i++) l.isLocal('10.244.1.7')
    expect(src.reads()).toBe(1)
    now += LOCAL_ADDRESSES_MISS_REFRESH_MS
    l.isLocal('192.0.2.1')
    expect(src.reads()).toBe(2)
  })

  it('an address the pod gave up stops counting once the snapshot is MAX_AGE_MS old', () => {
    let now = 0
    const ifaces: Ifaces = { ...POD }
    const l = new LocalAddresses({ reader: fixed(ifaces).reader, now: () => now })
    expect(l.isLocal('10.244.1.7')).toBe(true)
    delete ifaces.eth0
    now += LOCAL_ADDRESSES_MAX_AGE_MS - 1
    expect(l.isLocal('10.244.1.7')).toBe(true)
    now += 1
    expect(l.isLocal('10.244.1.7')).toBe(false)
  })

  it('a non-loopback address held by a loopback interface (a VIP on lo) is local, as the ruleset and Envoy treat it; 127/8 and ::1 are not, on any interface', () => {
    const l = new LocalAddresses({
      reader: fixed({
        lo: [v4('127.0.0.1', 8, true), v6('::1', 128, true), v4('10.96.0.10', 32, true), v6('fd00:96::10', 128, true)],
        eth0: [v4('10.244.1.7', 24), v4('127.1.2.3', 8)],
      }).reader,
    })
    expect(['10.96.0.10', '::ffff:10.96.0.10', 'fd00:96::10'].map((a) => l.isLocal(a))).toEqual([true, true, true])
    expect(['127.0.0.1', '127.1.2.3', '127.9.9.9', '::ffff:127.1.2.3', '::1'].map((a) => l.isLocal(a))).toEqual([false, false, false, false, false])
  })

  it('reads this machine’s interfaces by default: a non-loopback address of its own is local, its loopback is not', () => {
    const own = Object.values(os.networkInterfaces()).flat().find((i) => i !== undefined && !i.internal && i.family === 'IPv4')
    if (own !== undefined) expect(new LocalAddresses().isLocal(own.address)).toBe(true)
    expect(new LocalAddresses().isLocal('127.0.0.1')).toBe(false)
  })
})
