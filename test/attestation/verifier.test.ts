import { describe, it, expect } from 'vitest'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { checkReportData, checkValidity, claimsToJson } from '../../src/attestation/verifier.js'

describe('checkReportData', () => {
  const actual = new Uint8Array(64)
  actual.set([1, 2, 3])

  it('accepts an exact or zero-padded match', () => {
    expect(checkReportData(actual, actual)).toBeUndefined()
    expect(checkReportData(actual, Uint8Array.of(1, 2, 3))).toBeUndefined()
  })

  it('rejects a different, longer, or non-padded value', () => {
    expect(checkReportData(actual, Uint8Array.of(1, 2, 4))).toMatchObject({ code: 'REPORT_DATA_MISMATCH', details: { expected: '010204' } })
    expect(checkReportData(actual, new Uint8Array(65))).toMatchObject({ code: 'REPORT_DATA_MISMATCH' })
    expect(checkReportData(new Uint8Array(64).fill(1), Uint8Array.of(1))).toMatchObject({ code: 'REPORT_DATA_MISMATCH' })
  })
})

describe('checkValidity', () => {
  const cert = { subject: 'CN=x', validFrom: 'Jan  1 00:00:00 2024 GMT', validTo: 'Jan  1 00:00:00 2025 GMT' }
  it.each([
    ['2023-12-31T23:59:59Z', 'CERT_NOT_YET_VALID'],
    ['2024-01-01T00:00:00Z', undefined],
    ['2025-01-01T00:00:00Z', undefined],
    ['2025-01-01T00:00:01Z', 'CERT_EXPIRED'],
  ])('at %s: %s', (at, code) => {
    expect(checkValidity('leaf', cert, new Date(at))?.code).toBe(code)
  })
})

describe('claimsToJson', () => {
  it('hex for bytes, 0x-hex for bigints, ISO for dates, shape kept, undefined dropped', () => {
    expect(claimsToJson({ a: Uint8Array.of(0xab, 1), b: 0x30000n, c: [Uint8Array.of(2)], d: { e: new Date(0), f: undefined }, g: 'x', h: 3 })).toEqual({
      a: 'ab01',
      b: '0x0000000000030000',
      c: ['02'],
      d: { e: '1970-01-01T00:00:00.000Z' },
      g: 'x',
      h: 3,
    })
  })
})

// Every reason a verifier can give must be produced by some test: list the codes
// in the union and look for each, quoted, in this folder's tests.
describe('reason coverage', () => {
  it('every VerifyReasonCode is asserted by a test', () => {
    const src = readFileSync(fileURLToPath(new URL('../../src/attestation/verifier.ts', import.meta.url)), 'utf8')
    const union = src.slice(src.indexOf('export type VerifyReasonCode'), src.indexOf('export interface VerifyReason'))
    const codesInUnion = [...union.matchAll(/\| '([A-Z0-9_]+)'/g)].map((m) => m[1]!)
    expect(codesInUnion.length).toBeGreaterThan(40)
    const here = fileURLToPath(new URL('.', import.meta.url))
    const files = (readdirSync(here, { recursive: true }) as string[]).filter((f) => f.endsWith('.test.ts') && !f.endsWith('verifier.test.ts'))
    const tests = files.map((f) => readFileSync(join(here, f), 'utf8')).join('\n')
    expect(codesInUnion.filter((c) => !tests.includes(`'${c}'`))).toEqual([])
  })
})
