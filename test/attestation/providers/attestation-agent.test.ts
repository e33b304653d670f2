import { describe, it, expect, beforeAll, beforeEach, afterEach } from 'vitest'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { pino } from 'pino'
import { AttestationAgentProvider, normalizeAaEvidence } from '../../../src/attestation/providers/attestation-agent.js'
import { SimulatedProvider } from '../../../src/attestation/providers/simulated.js'
import { GrpcCode, statusError, TtrpcServer } from '../../../src/ttrpc/index.js'
import { logSink, rejected, thrown } from '../../support.js'

const reportData = Uint8Array.from({ length: 64 }, (_, i) => 255 - i)
const enc = (o: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(o))
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')

/** GetEvidenceResponse{1: Evidence} encoded by hand, independent of the provider's protobuf types. */
function evidenceResponse(json: Uint8Array): Uint8Array {
  const len: number[] = []
  let n = json.byteLength
  do {
    len.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0))
    n >>>= 7
  } while (n > 0)
  return Uint8Array.from([0x0a, ...len, ...json])
}

function tdxQuote(rd: Uint8Array, version = 4): Uint8Array {
  const q = new Uint8Array(0x300)
  q[0] = version
  q.set(rd, version === 4 ? 0x238 : 0x23e)
  return q
}

let sim: SimulatedProvider
let snpReport: Uint8Array
beforeAll(async () => {
  sim = await SimulatedProvider.create()
  snpReport = (await sim.getEvidence(reportData)).raw
})

let dir: string
let sock: string
let server: TtrpcServer
let answer: (runtimeData: Uint8Array) => Uint8Array
const received: Uint8Array[] = []
let sink: ReturnType<typeof logSink>
let log: pino.Logger

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'aa-test-'))
  sock = path.join(dir, 'attestation-agent.sock')
  sink = logSink()
  log = pino({ level: 'debug' }, sink)
  received.length = 0
  server = new TtrpcServer({ log })
  server.register('attestation_agent.AttestationAgentService', {
    GetEvidence: (payload) => {
      received.push(payload)
      // RuntimeData is field 1, length-delimited, 64 bytes: 0a 40 ‖ data.
      if (payload[0] !== 0x0a || payload[1] !== 0x40 || payload.byteLength !== 66) throw statusError(GrpcCode.INVALID_ARGUMENT, 'bad request')
      return evidenceResponse(answer(payload.subarray(2)))
    },
    GetTeeType: () => Uint8Array.from([0x0a, 0x03, ...Buffer.from('snp')]),
  })
  await server.listen(sock)
})

afterEach(async () => {
  server.destroy()
  await fs.rm(dir, { recursive: true, force: true })
})

describe('AttestationAgentProvider over ttrpc', () => {
  it('normalizes TDX evidence (base64 quote and event log) and sends the report data as RuntimeData', async () => {
    const eventLog = Uint8Array.from([1, 2, 3, 4, 5])
    answer = (rd) => enc({ cc_eventlog: b64(eventLog), quote: b64(tdxQuote(rd)) })
    const ev = await new AttestationAgentProvider({ log, socketPath: sock }).getEvidence(reportData)
    expect(received[0]!.subarray(2)).toEqual(reportData)
    expect(ev).toMatchObject({ tee: 'tdx', provider: 'attestation-agent' })
    expect(ev.raw).toEqual(tdxQuote(reportData))
    expect(ev.eventLog).toEqual(eventLog)
    expect(ev.certs).toBeUndefined()
  })

  it('normalizes SNP evidence with the report as a byte array and a cert chain', async () => {
    answer = () =>
      enc({
        attestation_report: Array.from(snpReport),
        cert_chain: [
          { cert_type: 'ARK', data: Array.from(sim.chain[1]) },
          { cert_type: 'VCEK', data: Array.from(sim.vcek) },
          { cert_type: 'ASK', data: b64(sim.chain[0]) },
          { cert_type: { OTHER: '00000000-0000-0000-0000-000000000000' }, data: [1] },
        ],
      })
    const ev = await new AttestationAgentProvider({ log, socketPath: sock }).getEvidence(reportData)
    expect(ev.tee).toBe('snp')
    expect(ev.raw).toEqual(snpReport)
    expect(ev.certs).toEqual({ vcek: sim.vcek, chain: [sim.chain[0], sim.chain[1]] })
  })

  it('reads the TEE type', async () => {
    expect(await new AttestationAgentProvider({ log, socketPath: sock }).getTeeType()).toBe('snp')
  })

  it('turns an agent status into PROVIDER_AA_CALL carrying the gRPC code', async () => {
    answer = () => {
      throw statusError(GrpcCode.INTERNAL, 'attester failed')
    }
    const err = await rejected(new AttestationAgentProvider({ log, socketPath: sock }).getEvidence(reportData))
    expect(err).toMatchObject({ code: 'PROVIDER_AA_CALL', details: { method: 'GetEvidence', ttrpcCode: 'TTRPC_STATUS', grpcCode: GrpcCode.INTERNAL, grpcMessage: 'attester failed' } })
  })

  it('reports a missing socket as PROVIDER_AA_CALL with the connect failure', async () => {
    const err = await rejected(new AttestationAgentProvider({ log, socketPath: path.join(dir, 'none.sock') }).getEvidence(reportData))
    expect(err).toMatchObject({ code: 'PROVIDER_AA_CALL', details: { ttrpcCode: 'TTRPC_CONNECT' } })
  })

  it('times out against an agent that never answers', async () => {
    server.register('attestation_agent.AttestationAgentService', { GetEvidence: () => new Promise<Uint8Array>(() => {}) })
    const err = await rejected(new AttestationAgentProvider({ log, socketPath: sock, timeoutMs: 50 }).getEvidence(reportData))
    expect(err).toMatchObject({ code: 'PROVIDER_AA_CALL', details: { ttrpcCode: 'TTRPC_TIMEOUT' } })
  })

  it('refuses evidence that answers different report data', async () => {
    answer = () => enc({ cc_eventlog: null, quote: b64(tdxQuote(new Uint8Array(64))) })
    const err = await rejected(new AttestationAgentProvider({ log, socketPath: sock }).getEvidence(reportData))
    expect(err).toMatchObject({ code: 'PROVIDER_AA_EVIDENCE', details: { field: 'quote', problem: 'mismatch' } })
  })
})

describe('normalizeAaEvidence', () => {
  it('accepts a v5 quote and a null event log', () => {
    const ev = normalizeAaEvidence(enc({ cc_eventlog: null, quote: b64(tdxQuote(reportData, 5)) }), reportData)
    expect(ev.tee).toBe('tdx')
    expect(ev.eventLog).toBeUndefined()
  })

  it('accepts an SNP report as base64 without a cert chain', () => {
    const ev = normalizeAaEvidence(enc({ attestation_report: b64(snpReport), cert_chain: null }), reportData)
    expect(ev.raw).toEqual(snpReport)
    expect(ev.certs).toBeUndefined()
  })

  it.each([
    ['not JSON', new TextEncoder().encode('{'), 'evidence'],
    ['not UTF-8', Uint8Array.from([0x7b, 0xff, 0x7d]), 'evidence'],
    ['a JSON array', enc([1]), 'evidence'],
    ['an unknown shape', enc({ foo: 1 }), 'evidence'],
    ['the structured sev report', enc({ attestation_report: { version: 3, guest_svn: 0 } }), 'attestation_report'],
    ['a non-base64 quote', enc({ quote: 'not base64!' }), 'quote'],
    ['a byte array with 256', enc({ attestation_report: [1, 256] }), 'attestation_report'],
    ['a short SNP report', enc({ attestation_report: [1, 2, 3] }), 'attestation_report'],
    ['a cert chain that is not an array', enc({ attestation_report: Array.from(new Uint8Array(0x4a0)), cert_chain: {} }), 'cert_chain'],
    ['a cert entry with bad data', enc({ attestation_report: b64(new Uint8Array(0x4a0)), cert_chain: [{ cert_type: 'VCEK', data: null }] }), 'cert_chain[0].data'],
    ['a quote of an unknown version', enc({ quote: b64(tdxQuote(reportData, 3)) }), 'quote'],
  ])('refuses %s naming %s', (_, json, field) => {
    expect(thrown(() => normalizeAaEvidence(json, reportData))).toMatchObject({ code: 'PROVIDER_AA_EVIDENCE', details: { field } })
  })
})
