import { describe, it, expect } from 'vitest'
import { formatIp, parseCidr, parseDnsName, parseHost, parseIPv4, parseIPv6, splitHostPort } from '../../src/config/address.js'

describe('IPv6 canonical form (RFC 5952)', () => {
  it.each([
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal zero runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['0:0:0:0:0:ffff:192.0.2.1', '::ffff:c000:201'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
  ])('%s -> %s', (input, canonical) => {
    const ip = parseIPv6(input)
    expect(ip).toBeDefined()
    expect(formatIp(ip!)).toBe(canonical)
  })

  it.each(['1::2::3', ':::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::', 'fe80::1%eth0', 'g::1', '1:2:3:4:5:6:7::8', ''])(
    'rejects %j',
    (input) => {
      expect(parseIPv6(input)).toBeUndefined()
    },
  )
})

describe('IPv4', () => {
  it.each(['1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.-4', '1..2.3', ' 1.2.3.4'])('rejects %j', (input) => {
    expect(parseIPv4(input)).toBeUndefined()
  })
  it('reads 0.0.0.0 and 255.255.255.255', () => {
    expect(Array.from(parseIPv4('0.0.0.0')!.bytes)).toEqual([0, 0, 0, 0])
    expect(formatIp(parseIPv4('255.255.255.255')!)).toBe('255.255.255.255')
  })
})

describe('DNS names (RFC 1123)', () => {
  it.each([
    ['backend', 'backend'],
    ['Backend.Default.svc', 'backend.default.svc'],
    ['3com.example', '3com.example'],
    ['a-b.c', 'a-b.c'],
  ])('%s', (input, out) => expect(parseDnsName(input)).toBe(out))
  it.each(['', 'a..b', 'a.', '-a', 'a-', 'a_b', 'x'.repeat(64), `${'a.'.repeat(127)}ab`, '1.2.3', 'a b'])('rejects %j', (input) => {
    expect(parseDnsName(input)).toBeUndefined()
  })
})

describe('host:port', () => {
  it('splits on the last colon, or after the bracket', () => {
    expect(splitHostPort('a:1')).toEqual({ ok: true, value: { host: 'a', port: '1', bracketed: false } })
    expect(splitHostPort('[::1]:443')).toEqual({ ok: true, value: { host: '::1', port: '443', bracketed: true } })
    expect(splitHostPort('[::1]')).toMatchObject({ ok: false, missingPort: true })
    expect(splitHostPort('[::1]x')).toMatchObject({ ok: false, missingPort: false })
    expect(splitHostPort('a')).toMatchObject({ ok: false, missingPort: true })
  })
  it('hosts in brackets must be IPv6; IPv6 outside brackets is refused', () => {
    expect(parseHost('::1', true)).toMatchObject({ ok: true, value: { kind: 'ip' } })
    expect(parseHost('a.b', true).ok).toBe(false)
    expect(parseHost('::1', false).ok).toBe(false)
    expect(parseHost('10.0.0.1', false)).toMatchObject({ ok: true, value: { kind: 'ip' } })
    expect(parseHost('svc', false)).toEqual({ ok: true, value: { kind: 'dns', name: 'svc' } })
  })
})

describe('CIDR', () => {
  it.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['10.1.2.3', '10.1.2.3/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['fd00::/64', 'fd00::/64'],
    ['FD00:0::1', 'fd00::1/128'],
    ['::/0', '::/0'],
    ['10.0.0.128/25', '10.0.0.128/25'],
    ['fd00::8000/113', 'fd00::8000/113'],
  ])('%s -> %s', (input, out) => {
    const r = parseCidr(input)
    expect(r.ok && `${formatIp(r.value.ip)}/${r.value.prefix}`).toBe(out)
  })
  it.each([
    ['10.0.0.1/8', true],
    ['10.0.0.129/25', true],
    ['fd00::4000/113', true],
    ['fd00::8000/112', true],
    ['10.0.0.0/33', false],
    ['fd00::/129', false],
    ['10.0.0.0/', false],
    ['10.0.0.0/a', false],
    ['x/8', false],
  ])('rejects %s (host bits: %s)', (input, hostBits) => {
    expect(parseCidr(input)).toMatchObject({ ok: false, hostBits })
  })
})
