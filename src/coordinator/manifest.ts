// The coordinator's manifest (JSON): which workloads get mesh certificates, and what
// their evidence must show. Policies are keyed like Contrast's, by the policy hash the
// TEE reports (SNP HOST_DATA, TDX MRCONFIGID), so a pod's measured initdata decides its
// SANs; reference values say which platforms, measurements and TCBs are acceptable.
// Simulated evidence is refused unless the manifest says otherwise.

import { createHash } from 'node:crypto'
import { isIP } from 'node:net'
import { z } from 'zod'
import { CoordinatorError } from './errors.js'

const hex = (bytes: number, what: string) =>
  z
    .string()
    .regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`), `${what}: expected hex of ${bytes} bytes`)
    .transform((s) => s.toLowerCase())

// HOSTDATA is 32 bytes; MRCONFIGID 48. Contrast keys TDX policies by MRCONFIGID[0:32], so
// either length names a policy.
const POLICY_KEY = /^(?:[0-9a-f]{64}|[0-9a-f]{96})$/

const San = z
  .string()
  .min(1, 'empty SAN')
  .max(253, 'SAN longer than 253 characters')
  .refine((s) => !/[\s,]/.test(s), 'a SAN must not contain whitespace or commas')

const PolicySchema = z.strictObject({
  sans: z.array(San).min(1, 'a policy needs at least one SAN (the first becomes the CN)'),
  workloadSecretId: z.string().max(256).optional(),
  role: z.enum(['', 'coordinator']).optional(),
})

const SnpTcbSchema = z.strictObject({
  bootloader: z.number().int().min(0).max(255).optional(),
  tee: z.number().int().min(0).max(255).optional(),
  snp: z.number().int().min(0).max(255).optional(),
  microcode: z.number().int().min(0).max(255).optional(),
  fmc: z.number().int().min(0).max(255).optional(),
})

// A launch measurement is what names the code: HOST_DATA / MRCONFIGID is chosen by
// whoever launches the VM. So reference values for a real TEE must pin it; a manifest
// without them would hand a policy's identity to any image launched with its hash.
const required = (what: string) => ({
  error: (iss: { input?: unknown }) => (iss.input === undefined ? `${what} is required: without it any guest image launched with a policy's hash is admitted` : undefined),
})

const SnpReferenceSchema = z.strictObject({
  products: z.array(z.enum(['Milan', 'Genoa', 'Turin'])).min(1).optional(),
  /** Minimum of REPORTED_TCB (what the VCEK endorses) and of LAUNCH_TCB. */
  minimumTcb: SnpTcbSchema.optional(),
  minimumLaunchTcb: SnpTcbSchema.optional(),
  /** The VMPL the guest's evidence must come from; default 0 (another level for SVSM setups). */
  vmpl: z.number().int().min(0).max(3).optional(),
  /** Guest policy bits beyond DEBUG; by default MIGRATE_MA and CXL_ALLOW are refused. */
  guestPolicy: z
    .strictObject({
      allowMigrationAgent: z.boolean().optional(),
      allowSmt: z.boolean().optional(),
      allowCxl: z.boolean().optional(),
      requireSingleSocket: z.boolean().optional(),
      requireMemAes256Xts: z.boolean().optional(),
      requireRaplDisabled: z.boolean().optional(),
      requireCiphertextHiding: z.boolean().optional(),
      requirePageSwapDisabled: z.boolean().optional(),
      minimumAbi: z.strictObject({ major: z.number().int().min(0).max(255), minor: z.number().int().min(0).max(255) }).optional(),
    })
    .optional(),
  measurements: z.array(hex(48, 'measurement'), required('the launch measurement allow-list (SNP MEASUREMENT)')).min(1),
  allowDebug: z.boolean().optional(),
})

// Kata/CoCo TDs boot TDVF: MRTD measures the firmware only; TDVF extends RTMR0 with its
// configuration (TD HOB, CFV, ACPI tables: these follow the VM size), RTMR1 with the
// kernel, RTMR2 with the kernel command line and initrd. RTMR3 is left to the guest at
// runtime. The kernel, initrd and command line are the image: RTMR1 and RTMR2 are required.
const rtmr = (i: number) => z.array(hex(48, `rtmr[${i}]`)).min(1)
const TdxReferenceSchema = z.strictObject({
  mrTd: z.array(hex(48, 'mrTd'), required('the MRTD allow-list (TDVF firmware)')).min(1),
  /** Allowed values per RTMR index; 1 (kernel) and 2 (command line, initrd) are required. */
  rtmr: z.strictObject(
    {
      '0': rtmr(0).optional(),
      '1': z.array(hex(48, 'rtmr[1]'), required('rtmr[1] (the kernel)')).min(1),
      '2': z.array(hex(48, 'rtmr[2]'), required('rtmr[2] (kernel command line and initrd)')).min(1),
      '3': rtmr(3).optional(),
    },
    required('rtmr (RTMR1 kernel, RTMR2 command line and initrd)'),
  ),
  minimumTeeTcbSvn: hex(16, 'minimumTeeTcbSvn').optional(),
  /** Minimum ISVSVN of Intel's quoting enclave. */
  minimumQeSvn: z.number().int().min(0).max(65535).optional(),
  /** Allow-lists, as the quote reports them: TD_ATTRIBUTES and XFAM (8 bytes), MRSEAM (48). */
  tdAttributes: z.array(hex(8, 'tdAttributes')).min(1).optional(),
  xfam: z.array(hex(8, 'xfam')).min(1).optional(),
  mrSeam: z.array(hex(48, 'mrSeam')).min(1).optional(),
  /** Admit a migratable TD (TD_ATTRIBUTES.MIGRATABLE). Default false. */
  allowMigratable: z.boolean().optional(),
  allowDebug: z.boolean().optional(),
})

export const ManifestSchema = z.strictObject({
  policies: z.record(z.string(), PolicySchema),
  referenceValues: z
    .strictObject({
      snp: SnpReferenceSchema.optional(),
      tdx: TdxReferenceSchema.optional(),
    })
    .optional(),
  /**
   * Accept evidence signed by a simulated (non-TEE) root. Off by default: such evidence
   * proves nothing, and is checked against `referenceValues.snp` only where present. `simulatedRoots` pins those roots by SHA-256 of their DER; without
   * it any root the evidence brings is taken, which is only for labs.
   */
  acceptSimulated: z.boolean().optional(),
  simulatedRoots: z.array(hex(32, 'simulatedRoots')).optional(),
})

export type ManifestInput = z.input<typeof ManifestSchema>

export interface Policy {
  readonly sans: readonly string[]
  readonly workloadSecretId: string | undefined
  readonly role: '' | 'coordinator'
}

export interface Manifest {
  /** hex policy hash (lower-case) → policy. */
  readonly policies: ReadonlyMap<string, Policy>
  readonly referenceValues: z.output<typeof ManifestSchema>['referenceValues']
  readonly acceptSimulated: boolean
  readonly simulatedRoots: readonly string[] | undefined
  /** SHA-256 of the exact bytes the manifest was read from (its identity in updates). */
  readonly hash: string
  /** The exact bytes, kept so state can persist what was given. */
  readonly text: string
}

export interface ManifestIssue {
  readonly path: string
  readonly message: string
}

/** Parses and validates manifest text; every problem in one COORDINATOR_MANIFEST_INVALID. */
export function parseManifest(text: string, source = 'manifest'): Manifest {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (cause) {
    throw new CoordinatorError('COORDINATOR_MANIFEST_INVALID', `${source}: not JSON: ${(cause as Error).message}`, {
      source,
      issues: [{ path: '', message: 'not JSON' }],
    }, { cause })
  }
  const parsed = ManifestSchema.safeParse(doc)
  const issues: ManifestIssue[] = []
  if (!parsed.success) {
    for (const i of parsed.error.issues) issues.push({ path: i.path.map(String).join('.'), message: i.message })
  } else {
    for (const [key, policy] of Object.entries(parsed.data.policies)) {
      if (!POLICY_KEY.test(key)) {
        issues.push({ path: `policies.${key}`, message: 'policy key must be lower-case hex of 32 (HOSTDATA) or 48 (MRCONFIGID) bytes' })
      }
      policy.sans.forEach((san, i) => {
        if (isIP(san) === 0 && !/^[a-z][a-z0-9+.-]*:\/\//i.test(san) && !/^(\*|[A-Za-z0-9*_-]+)(\.[A-Za-z0-9_-]+)*\.?$/.test(san)) {
          issues.push({ path: `policies.${key}.sans.${i}`, message: `"${san}" is neither a DNS name, an IP address nor a URI` })
        }
      })
    }
  }
  if (issues.length > 0 || !parsed.success) {
    const first = issues[0]
    throw new CoordinatorError(
      'COORDINATOR_MANIFEST_INVALID',
      `${source}: ${issues.length} problem(s), first at ${first?.path === '' ? '(root)' : first?.path}: ${first?.message}`,
      { source, issues },
    )
  }
  const data = parsed.data
  const policies = new Map<string, Policy>()
  for (const [key, p] of Object.entries(data.policies)) {
    policies.set(key, { sans: p.sans, workloadSecretId: p.workloadSecretId, role: p.role ?? '' })
  }
  return {
    policies,
    referenceValues: data.referenceValues,
    acceptSimulated: data.acceptSimulated ?? false,
    simulatedRoots: data.simulatedRoots,
    hash: createHash('sha256').update(text).digest('hex'),
    text,
  }
}

/**
 * The policy for a reported policy hash. SNP: HOST_DATA (32 bytes). TDX: MRCONFIGID
 * (48 bytes), matched whole or by its first 32 bytes — but only when the rest is zero,
 * which is how Kata pads a 32-byte digest. Otherwise `digest ‖ anything` would match.
 */
export function lookupPolicy(manifest: Manifest, reported: Uint8Array): { key: string; policy: Policy } | undefined {
  const full = Buffer.from(reported).toString('hex')
  const zeroPadded32 = reported.byteLength === 48 && reported.subarray(32).every((b) => b === 0)
  const candidates = zeroPadded32 ? [full, full.slice(0, 64)] : [full]
  for (const key of candidates) {
    const policy = manifest.policies.get(key)
    if (policy !== undefined) return { key, policy }
  }
  return undefined
}
