// `podvm-mesh evidence verify`: verify an SEV-SNP report or a TDX quote from
// files and print one JSON object. Exit 0 verified, 1 not verified, 2 unusable
// input. This is the impure edge: it reads files and, without --at, the clock.

import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { claimsToJson, decodeEvidenceFile, fromHex, isSnpCertTable, SNP_REPORT_BYTES, verifySnp, verifyTdx, type VerifyReason } from '../attestation/index.js'
import { command, EXIT_NEGATIVE, EXIT_OK, UsageError, type CommandIo } from './command.js'

const USAGE = `usage: podvm-mesh evidence verify (--snp-report FILE [--vcek FILE] [--chain FILE] [--cert-table FILE] | --tdx-quote FILE)
                                [--at ISO-TIME] [--report-data HEX] [--allow-debug]

  FILE may be binary, hex or base64; certificates PEM or DER. Bytes after the
  ${SNP_REPORT_BYTES}-byte SNP report are read as its certificate table when they are shaped
  like one (an extended report); otherwise they are ignored and named under "ignored".
  --chain is the ASK (or ASVK) then the ARK; without it AMD's pinned chain is used.
  Exit status: 0 verified, 1 not verified, 2 unusable input.
`

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path))
  } catch (err) {
    throw new UsageError(`${what}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** Bytes after the report that are not its certificate table: not covered by the signature, so only named. */
interface Ignored {
  readonly offset: number
  readonly length: number
  /** The first IGNORED_HEX_MAX bytes. */
  readonly hex: string
}
const IGNORED_HEX_MAX = 256

function print(io: CommandIo, tee: string, verified: boolean, reasons: readonly VerifyReason[], claims: unknown, ignored?: Ignored): number {
  io.stdout.write(`${JSON.stringify({ tee, verified, reasons, claims: claimsToJson(claims), ignored }, null, 2)}\n`)
  return verified ? EXIT_OK : EXIT_NEGATIVE
}

async function run(argv: string[], io: CommandIo): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'snp-report': { type: 'string' },
        vcek: { type: 'string' },
        chain: { type: 'string' },
        'cert-table': { type: 'string' },
        'tdx-quote': { type: 'string' },
        at: { type: 'string' },
        'report-data': { type: 'string' },
        'allow-debug': { type: 'boolean' },
      },
    }))
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const snpPath = values['snp-report']
  const tdxPath = values['tdx-quote']
  if ((snpPath === undefined) === (tdxPath === undefined)) throw new UsageError('give exactly one of --snp-report and --tdx-quote')
  if (tdxPath !== undefined && (values.vcek ?? values.chain ?? values['cert-table']) !== undefined) {
    throw new UsageError('--vcek, --chain and --cert-table apply to --snp-report only')
  }
  let at = new Date()
  if (values.at !== undefined) {
    at = new Date(values.at)
    if (Number.isNaN(at.getTime())) throw new UsageError(`--at: not an ISO time: ${values.at}`)
  }
  const reportData = values['report-data'] !== undefined ? fromHex(values['report-data'], '--report-data') : undefined
  if (reportData !== undefined && reportData.byteLength > 64) throw new UsageError(`--report-data: ${reportData.byteLength} B, at most 64`)
  const allowDebug = values['allow-debug'] === true

  if (tdxPath !== undefined) {
    const quote = decodeEvidenceFile(await readInput(tdxPath, '--tdx-quote')).bytes
    const r = verifyTdx(quote, { at, policy: { allowDebug, reportData } })
    return print(io, r.tee, r.verified, r.reasons, r.claims)
  }

  const file = decodeEvidenceFile(await readInput(snpPath!, '--snp-report')).bytes
  const report = file.subarray(0, Math.min(file.byteLength, SNP_REPORT_BYTES))
  const trailer = file.byteLength > SNP_REPORT_BYTES ? file.subarray(SNP_REPORT_BYTES) : undefined
  let certTable = trailer !== undefined && isSnpCertTable(trailer) ? trailer : undefined
  const ignored =
    trailer !== undefined && certTable === undefined
      ? { offset: SNP_REPORT_BYTES, length: trailer.byteLength, hex: Buffer.from(trailer.subarray(0, IGNORED_HEX_MAX)).toString('hex') }
      : undefined
  if (values['cert-table'] !== undefined) {
    if (certTable !== undefined) throw new UsageError('--cert-table given, but the report file already carries a certificate table')
    certTable = decodeEvidenceFile(await readInput(values['cert-table'], '--cert-table')).bytes
  }
  const r = verifySnp(report, {
    at,
    vcek: values.vcek === undefined ? undefined : await readInput(values.vcek, '--vcek'),
    chain: values.chain === undefined ? undefined : await readInput(values.chain, '--chain'),
    certTable,
    policy: { allowDebug, reportData },
  })
  return print(io, r.tee, r.verified, r.reasons, r.claims, ignored)
}

export const evidenceVerifyCommand = command({ name: 'evidence verify', usage: USAGE, run })
