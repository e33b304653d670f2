import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { evidenceVerifyCommand } from '../../src/cli/evidence.js'
import { main } from '../../src/cli.js'
import { buildSnpCertTable } from '../../src/attestation/snp/cert-table.js'
import { parseCertificates } from '../../src/attestation/encoding.js'
import { flip, vector, vectorPath } from '../attestation/vectors.js'
import { capturedIo } from './io.js'

function fakeIo() {
  const c = capturedIo()
  return { io: c, out: c.out, err: c.err }
}

async function run(argv: string[]): Promise<{ code: number; json: any; stderr: string }> {
  const f = fakeIo()
  const code = await evidenceVerifyCommand(argv, f.io)
  return { code, json: f.out() === '' ? undefined : JSON.parse(f.out()), stderr: f.err() }
}

const AT = ['--at', '2026-06-01T00:00:00Z']
let dir: string
const tmp = (name: string, data: Uint8Array | string): string => {
  const p = join(dir, name)
  writeFileSync(p, data)
  return p
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'evidence-verify-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('podvm-mesh evidence verify: SNP', () => {
  it('verified report: exit 0, one JSON object with hex claims', async () => {
    const r = await run(['--snp-report', vectorPath('snp/report_milan.bin'), '--vcek', vectorPath('snp/vcek_milan.der'), '--chain', vectorPath('snp/cert_chain_milan'), ...AT])
    expect(r.code).toBe(0)
    expect(r.json).toMatchObject({
      tee: 'snp',
      verified: true,
      reasons: [],
      claims: {
        measurement: '7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f',
        hostData: '00'.repeat(32),
        reportedTcb: { raw: '0x7308000000000003', bootloader: 3, tee: 0, snp: 8, microcode: 115 },
        product: 'Milan',
      },
    })
    expect(r.json.claims.reportData).toMatch(/^d447b55d/)
  })

  it('debug-allowed report: exit 1 with the reason, exit 0 with --allow-debug', async () => {
    const args = ['--snp-report', vectorPath('snp/attestation.bin'), '--vcek', vectorPath('snp/vcek.testcer'), ...AT]
    const denied = await run(args)
    expect(denied.code).toBe(1)
    expect(denied.json.reasons.map((x: { code: string }) => x.code)).toEqual(['SNP_DEBUG_ALLOWED'])
    expect((await run([...args, '--allow-debug'])).code).toBe(0)
  })

  it('--report-data binds the evidence', async () => {
    const args = ['--snp-report', vectorPath('snp/attestation.bin'), '--vcek', vectorPath('snp/vcek.testcer'), '--allow-debug', ...AT]
    expect((await run([...args, '--report-data', '0102030405'])).code).toBe(0)
    const bad = await run([...args, '--report-data', '0102030406'])
    expect(bad.code).toBe(1)
    expect(bad.json.reasons[0]).toMatchObject({ code: 'REPORT_DATA_MISMATCH' })
  })

  it('hex and base64 inputs are detected', async () => {
    const report = vector('snp/report_milan.bin')
    const hex = tmp('report.hex', Buffer.from(report).toString('hex').toUpperCase() + '\n')
    const b64 = tmp('report.b64', Buffer.from(report).toString('base64'))
    const vcekB64 = tmp('vcek.b64', Buffer.from(vector('snp/vcek_milan.der')).toString('base64'))
    for (const file of [hex, b64]) expect((await run(['--snp-report', file, '--vcek', vcekB64, ...AT])).code).toBe(0)
  })

  it('takes the VCEK from an extended report (report followed by its certificate table)', async () => {
    const [ask, ark] = parseCertificates(vector('snp/cert_chain_milan'))
    const table = buildSnpCertTable({ vcek: vector('snp/vcek_milan.der'), ask: new Uint8Array(ask!.raw), ark: new Uint8Array(ark!.raw) })
    const ext = tmp('extended.bin', Buffer.concat([vector('snp/report_milan.bin'), table]))
    expect((await run(['--snp-report', ext, ...AT])).code).toBe(0)
    const tableFile = tmp('table.bin', table)
    expect((await run(['--snp-report', vectorPath('snp/report_milan.bin'), '--cert-table', tableFile, ...AT])).code).toBe(0)
  })

  it('a report followed by bytes that are no certificate table (Azure: a 20-byte runtime-data header): verified, the bytes named', async () => {
    // Shaped like the header Azure's paravisor appends after the report (size, version, report type, hash type, ...).
    const header = Buffer.from('e40400000100000002000000010000004a000000', 'hex')
    const file = tmp('azure.bin', Buffer.concat([vector('snp/report_milan.bin'), header]))
    const r = await run(['--snp-report', file, '--vcek', vectorPath('snp/vcek_milan.der'), ...AT])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.json).toMatchObject({ verified: true, ignored: { offset: 1184, length: 20, hex: header.toString('hex') } })
    // Trailing bytes that parse as a table but point outside it are no table either.
    const bogus = Buffer.alloc(48)
    bogus.set(Buffer.from('63da758de6644564adc5f4b93be8accd', 'hex'))
    bogus.writeUInt32LE(4096, 16)
    bogus.writeUInt32LE(100, 20)
    const r2 = await run(['--snp-report', tmp('bogus.bin', Buffer.concat([vector('snp/report_milan.bin'), bogus])), '--vcek', vectorPath('snp/vcek_milan.der'), ...AT])
    expect(r2.code).toBe(0)
    expect(r2.json.ignored).toMatchObject({ offset: 1184, length: 48 })
  })

  it('no VCEK anywhere: exit 1 with a reason saying so', async () => {
    const r = await run(['--snp-report', vectorPath('snp/report_milan.bin'), ...AT])
    expect(r.code).toBe(1)
    expect(r.json.reasons).toEqual([expect.objectContaining({ code: 'SNP_ENDORSEMENT_MISSING' })])
  })

  it('tampered report or another chip\'s VCEK: exit 1', async () => {
    const tampered = tmp('tampered.bin', flip(vector('snp/report_milan.bin'), 0x50))
    expect((await run(['--snp-report', tampered, '--vcek', vectorPath('snp/vcek_milan.der'), ...AT])).code).toBe(1)
    expect((await run(['--snp-report', vectorPath('snp/report_milan.bin'), '--vcek', vectorPath('snp/vcek.testcer'), ...AT])).code).toBe(1)
  })

  it('expired at the given --at: exit 1', async () => {
    const r = await run(['--snp-report', vectorPath('snp/report_milan.bin'), '--vcek', vectorPath('snp/vcek_milan.der'), '--at', '2031-01-01T00:00:00Z'])
    expect(r.code).toBe(1)
    expect(r.json.reasons[0]).toMatchObject({ code: 'CERT_EXPIRED', details: { cert: 'vcek' } })
  })
})

describe('podvm-mesh evidence verify: TDX', () => {
  it.each(['tdx/tdx_prod_quote_SPR_E4.dat', 'tdx/quote_v5_sample.dat'])('%s: exit 0', async (file) => {
    const r = await run(['--tdx-quote', vectorPath(file), ...AT])
    expect(r.code).toBe(0)
    expect(r.json).toMatchObject({ tee: 'tdx', verified: true, claims: { debug: false, mrConfigId: '00'.repeat(48) } })
    expect(r.json.claims.rtmr).toHaveLength(4)
    expect(r.json.claims.mrTd).toMatch(/^[0-9a-f]{96}$/)
  })

  it('tampered quote: exit 1', async () => {
    const bad = tmp('quote.bin', flip(vector('tdx/tdx_prod_quote_SPR_E4.dat'), 0xb8))
    const r = await run(['--tdx-quote', bad, ...AT])
    expect(r.code).toBe(1)
    expect(r.json.reasons.map((x: { code: string }) => x.code)).toEqual(['TDX_QUOTE_SIGNATURE_INVALID'])
  })
})

describe('podvm-mesh evidence verify: unusable input exits 2', () => {
  it.each<[string, () => string[], RegExp]>([
    ['no evidence option', () => [], /exactly one of/],
    ['both evidence options', () => ['--snp-report', vectorPath('snp/attestation.bin'), '--tdx-quote', vectorPath('tdx/quote_v5_sample.dat')], /exactly one of/],
    ['unknown option', () => ['--snp-report', 'x', '--frobnicate'], /frobnicate/],
    ['missing file', () => ['--snp-report', join(dir, 'absent.bin')], /cannot read .*ENOENT/],
    ['bad --at', () => ['--tdx-quote', vectorPath('tdx/quote_v5_sample.dat'), '--at', 'yesterday'], /--at/],
    ['bad --report-data', () => ['--tdx-quote', vectorPath('tdx/quote_v5_sample.dat'), '--report-data', 'xyz'], /--report-data/],
    ['--report-data over 64 bytes', () => ['--tdx-quote', vectorPath('tdx/quote_v5_sample.dat'), '--report-data', 'ab'.repeat(65)], /at most 64/],
    ['--vcek with a TDX quote', () => ['--tdx-quote', vectorPath('tdx/quote_v5_sample.dat'), '--vcek', vectorPath('snp/vcek.testcer')], /apply to --snp-report/],
    ['truncated SNP report', () => ['--snp-report', tmp('short.bin', vector('snp/attestation.bin').subarray(0, 600))], /ATTESTATION_TRUNCATED/],
    ['truncated TDX quote', () => ['--tdx-quote', tmp('short.dat', vector('tdx/quote_v5_sample.dat').subarray(0, 1000))], /ATTESTATION_TRUNCATED/],
    ['wrong SNP version', () => ['--snp-report', tmp('v9.bin', Uint8Array.from([9, ...vector('snp/attestation.bin').subarray(1)]))], /ATTESTATION_UNSUPPORTED_VERSION/],
    ['VCEK that is not a certificate', () => ['--snp-report', vectorPath('snp/attestation.bin'), '--vcek', vectorPath('snp/attestation.bin')], /ATTESTATION_BAD_INPUT/],
  ])('%s', async (_name, argv, message) => {
    const r = await run(argv())
    expect(r.code).toBe(2)
    expect(r.json).toBeUndefined()
    expect(r.stderr).toMatch(message)
  })

  it('--help exits 0', async () => {
    const f = fakeIo()
    expect(await evidenceVerifyCommand(['--help'], f.io)).toBe(0)
    expect(f.out()).toMatch(/--snp-report/)
  })
})

describe('cli registration', () => {
  it('"podvm-mesh evidence verify" dispatches to the command', async () => {
    const f = fakeIo()
    const code = await main(['evidence', 'verify', '--tdx-quote', vectorPath('tdx/quote_v5_sample.dat'), ...AT], f.io)
    expect(code).toBe(0)
    expect(JSON.parse(f.out())).toMatchObject({ tee: 'tdx', verified: true })
  })
})
