import { describe, it, expect } from 'vitest'
import { encodeFrame, parseFrameHeader, peekFrame } from '../../src/ttrpc/frame.js'
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse, messageType } from '../../src/ttrpc/messages.js'
import { isMeshError } from '../../src/errors.js'
import { thrown } from '../support.js'

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
}
const ascii = (s: string): string => Buffer.from(s, 'latin1').toString('hex')

// kata-ttrpc.md §1 worked example: grpc.AgentService/StartContainer{container_id:"abc"}, stream 1, 5 s.
const EXAMPLE = hex(
  '00000030 00000001 01 00' +
    `0a 11 ${ascii('grpc.AgentService')} 12 0e ${ascii('StartContainer')} 1a 05 0a 03 ${ascii('abc')} 20 80 e4 97 d0 12`,
)
const StartContainerRequest = messageType('StartContainerRequest', [['containerId', 1, 'string']])

describe('worked example from the reference', () => {
  it('encodes the StartContainer request byte for byte', () => {
    const payload = StartContainerRequest.encode({ containerId: 'abc' }).finish()
    const data = encodeRequest({ service: 'grpc.AgentService', method: 'StartContainer', payload, timeoutNano: 5_000_000_000n, metadata: [] })
    expect(Buffer.from(encodeFrame({ streamId: 1, type: 1, flags: 0, data })).toString('hex')).toBe(Buffer.from(EXAMPLE).toString('hex'))
  })

  it('decodes the same bytes back', () => {
    const r = peekFrame(EXAMPLE)
    if (!r.complete) throw new Error('frame incomplete')
    expect(r.header).toEqual({ length: 0x30, streamId: 1, type: 1, flags: 0 })
    const req = decodeRequest(r.data)
    expect(req).toMatchObject({ service: 'grpc.AgentService', method: 'StartContainer', timeoutNano: 5_000_000_000n, metadata: [] })
    expect(StartContainerRequest.toObject(StartContainerRequest.decode(req.payload))).toEqual({ containerId: 'abc' })
  })

  it('encodes the Go server OK response for an Empty result', () => {
    const data = encodeResponse({ status: { code: 0, message: '', details: [] }, payload: new Uint8Array(0) })
    expect(Buffer.from(encodeFrame({ streamId: 1, type: 2, flags: 0, data })).toString('hex')).toBe('00000002000000010200' + '0a00')
  })

  it('encodes and decodes PERMISSION_DENIED "denied"', () => {
    const data = encodeResponse({ status: { code: 7, message: 'denied', details: [] }, payload: new Uint8Array(0) })
    expect(Buffer.from(data).toString('hex')).toBe(`0a0a0807 1206${ascii('denied')}`.replace(/\s/g, ''))
    expect(decodeResponse(hex('0a0a0807120664656e696564'))).toEqual({ status: { code: 7, message: 'denied', details: [] }, payload: new Uint8Array(0) })
  })

  it('reads the header of the example exactly', () => {
    expect(parseFrameHeader(EXAMPLE)).toEqual({ length: 48, streamId: 1, type: 1, flags: 0 })
  })
})

describe('envelopes', () => {
  it('round-trips metadata in order, one entry per value', () => {
    const req = {
      service: 's',
      method: 'm',
      payload: Uint8Array.from([9]),
      timeoutNano: 0n,
      metadata: [
        { key: 'a', value: '1' },
        { key: 'a', value: '2' },
        { key: 'b', value: '' },
      ],
    }
    expect(decodeRequest(encodeRequest(req))).toEqual(req)
  })

  it('keeps int64 timeouts beyond 2^53 exact', () => {
    const t = 2n ** 62n + 1n
    expect(decodeRequest(encodeRequest({ service: 's', method: 'm', payload: new Uint8Array(0), timeoutNano: t, metadata: [] })).timeoutNano).toBe(t)
  })

  it('treats a response without status as OK-shaped (status undefined)', () => {
    expect(decodeResponse(hex(`12 02 ${ascii('hi')}`))).toEqual({ status: undefined, payload: Uint8Array.from([0x68, 0x69]) })
  })

  it('decodes Status details (Any)', () => {
    const data = encodeResponse({ status: { code: 3, message: 'x', details: [{ typeUrl: 't', value: Uint8Array.from([1]) }] }, payload: new Uint8Array(0) })
    expect(decodeResponse(data).status).toEqual({ code: 3, message: 'x', details: [{ typeUrl: 't', value: Uint8Array.from([1]) }] })
  })

  it.each([
    ['truncated length-delimited field', '0a 11 67 72'],
    ['truncated varint', '20 80 80'],
    ['invalid wire type', '0f'],
  ])('a %s is TTRPC_PROTOCOL, not a RangeError', (_, bytes) => {
    const err = thrown(() => decodeRequest(hex(bytes)))
    expect(err).toMatchObject({ code: 'TTRPC_PROTOCOL', details: { message: 'Request' } })
  })
})

describe('decoding hostile bytes', () => {
  // Deterministic PRNG so a failure reproduces.
  let seed = 0x2545f491
  const rand = (n: number): number => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return (seed >>> 0) % n
  }

  it('mutated and truncated envelopes either decode or throw TTRPC_PROTOCOL, nothing else', () => {
    const body = EXAMPLE.subarray(10)
    const codes = new Set<string>()
    for (let i = 0; i < 2000; i++) {
      const m = Uint8Array.from(body.subarray(0, 1 + rand(body.length)))
      for (let k = rand(4); k >= 0; k--) m[rand(m.length)] = rand(256)
      for (const fn of [decodeRequest, decodeResponse]) {
        try {
          fn(m)
        } catch (err) {
          expect(isMeshError(err)).toBe(true)
          codes.add((err as { code: string }).code)
        }
      }
    }
    expect([...codes]).toEqual(['TTRPC_PROTOCOL'])
  })
})
