// `podvm-mesh initdata`: set the initdata annotation on the confidential pod templates
// of a manifest and print the digests the coordinator's manifest must list.

import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { INITDATA_ALGORITHMS, parseMeshSection, type InitdataAlgorithm } from '../config/index.js'
import {
  addInitdataToManifest,
  CONTRAST_INJECTED,
  MESH_ANNOTATIONS,
  OWN_ANNOTATIONS,
  refText,
  RUNTIME_CLASS_PREFIX,
  updateCoordinatorPolicies,
  type InitdataResult,
} from '../policy/index.js'
import { command, UsageError, type CommandIo } from './command.js'

const USAGE = `usage: podvm-mesh initdata MANIFEST|- --coordinator HOST:PORT --coordinator-identity HEX
                           [--coordinator-measurement HEX ...] [--coordinator-rtmr I=HEX ...]
                           [--policy FILE] [--algorithm sha256|sha384|sha512]
                           [--namespace NS] [--coordinator-manifest FILE]
                           [--out FILE | --write] [--json]

For every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob whose
runtimeClassName starts with "${RUNTIME_CLASS_PREFIX}" (others are left untouched), reads
${Object.values(MESH_ANNOTATIONS).join(',\n')}
from the pod template, validates them, and sets io.katacontainers.config.hypervisor.cc_init_data
(base64 of gzip of the initdata TOML) with the mesh section "podvm-mesh.toml", keeping the
other [data] entries of an existing annotation. --policy includes FILE as policy.rego; the
mesh's policy rules are merged into whichever policy.rego is included.

A manifest written by \`contrast generate\` is converted: its injected containers
(${Object.values(CONTRAST_INJECTED).join(', ')}) are removed and the sidecar's mesh env is
used. ${OWN_ANNOTATIONS.ownTls}: "true" marks a pod that does its own TLS (ingress not
redirected); ${OWN_ANNOTATIONS.egressMeshCaOnly}: "NAME,..." lets those egress entries
accept any mesh member (no secure naming).

Prints per resource the initdata digest (hex; the policy hash for the coordinator
manifest; SNP HOST_DATA is its first 32 bytes, TDX MRCONFIGID its first 48, zero-padded)
and the resource, then the names its certificate must carry (the workload, and every
name of each Service that selects it; resources without a namespace are in --namespace,
default "default") and what the mesh does on each port and egress entry.
--coordinator-manifest FILE writes those names and the workload secret ids into FILE's
policies (created if missing; a workload's older policy is replaced). The manifest goes
to --out, back to MANIFEST (--write), or to stdout, in which case the report goes to
stderr.
`

const OPTIONS = {
  coordinator: { type: 'string' },
  'coordinator-identity': { type: 'string' },
  'coordinator-measurement': { type: 'string', multiple: true },
  'coordinator-rtmr': { type: 'string', multiple: true },
  policy: { type: 'string' },
  algorithm: { type: 'string' },
  namespace: { type: 'string' },
  'coordinator-manifest': { type: 'string' },
  out: { type: 'string' },
  write: { type: 'boolean' },
  json: { type: 'boolean' },
} as const

function usageError(argument: string, message: string): UsageError {
  return new UsageError(message, { argument })
}

function readInput(path: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8')
  } catch (err) {
    throw usageError(path, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
}

async function run(argv: string[], io: CommandIo): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    throw usageError('argv', err instanceof Error ? err.message : String(err))
  }
  const { values, positionals } = parsed
  const [input, ...extra] = positionals
  if (input === undefined || extra.length > 0) throw usageError('MANIFEST', 'give exactly one manifest path (or - for stdin)')
  if (values.coordinator === undefined) throw usageError('--coordinator', '--coordinator HOST:PORT is required')
  if (values['coordinator-identity'] === undefined) throw usageError('--coordinator-identity', '--coordinator-identity HEX (the coordinator policy hash) is required')
  if (values.write === true && (values.out !== undefined || input === '-')) throw usageError('--write', '--write rewrites MANIFEST in place: not with --out or stdin')
  let algorithm: InitdataAlgorithm | undefined
  if (values.algorithm !== undefined) {
    if (!(INITDATA_ALGORITHMS as readonly string[]).includes(values.algorithm)) throw usageError('--algorithm', `--algorithm must be one of ${INITDATA_ALGORITHMS.join(', ')}`)
    algorithm = values.algorithm as InitdataAlgorithm
  }
  // The pin is validated exactly as the daemon will read it.
  const measurements = values['coordinator-measurement']
  const pinText =
    `[coordinator]\naddress = ${JSON.stringify(values.coordinator)}\nidentity = ${JSON.stringify(values['coordinator-identity'])}\n` +
    (measurements !== undefined ? `measurements = ${JSON.stringify(measurements)}\n` : '') +
    (values['coordinator-rtmr'] !== undefined ? `rtmr = ${JSON.stringify(values['coordinator-rtmr'])}\n` : '')
  const { coordinator } = parseMeshSection(pinText)
  const policy = values.policy !== undefined ? readInput(values.policy) : undefined

  const result = addInitdataToManifest(readInput(input), {
    coordinator,
    algorithm,
    policy,
    namespace: values.namespace,
  })
  const policiesFile = values['coordinator-manifest']
  const policies =
    policiesFile === undefined
      ? undefined
      : updateCoordinatorPolicies(existsSync(policiesFile) ? readInput(policiesFile) : undefined, result.results, policiesFile)

  const target = values.write === true ? input : values.out
  if (target !== undefined) writeFileSync(target, result.manifest)
  else io.stdout.write(result.manifest)
  if (policiesFile !== undefined && policies !== undefined) writeFileSync(policiesFile, policies.text)
  const report = target !== undefined ? io.stdout : io.stderr
  for (const s of result.skipped) io.stderr.write(`podvm-mesh initdata: skipped ${refText(s.resource)}: ${s.reason}\n`)
  for (const r of result.results) for (const w of r.warnings) io.stderr.write(`podvm-mesh initdata: ${refText(r.resource)}: warning: ${w}\n`)
  if (values.json === true) {
    const out = result.results.map(({ toml: _toml, ...r }) => r)
    report.write(`${JSON.stringify(out, null, 2)}\n`)
  } else {
    for (const r of result.results) report.write(planText(r))
  }
  if (policiesFile !== undefined && policies !== undefined) {
    io.stderr.write(`podvm-mesh initdata: ${policiesFile}: ${result.results.length} polic${result.results.length === 1 ? 'y' : 'ies'} written${policies.replaced.length > 0 ? `, ${policies.replaced.length} older replaced` : ''}\n`)
  }
  return 0
}

/** The digest line (unchanged, for scripts), then what the mesh will do for this pod. */
function planText(r: InitdataResult): string {
  const lines = [`${r.digest}  ${refText(r.resource)}`]
  if (r.converted.length > 0) lines.push(`  converted from contrast generate: removed ${r.converted.join(', ')}`)
  lines.push(`  names: ${r.sans.join(', ')}`)
  lines.push(`  workload secret id: ${r.workloadSecretId}`)
  if (r.ports.length === 0) lines.push('  ports: none named in the manifest; every port: mTLS unless an ingress entry says otherwise')
  for (const p of r.ports) lines.push(`  port ${p.port} (${p.seen.join('; ')}): ${p.text}`)
  for (const e of r.egress) lines.push(`  egress ${e}`)
  return `${lines.join('\n')}\n`
}

export const initdataCommand = command({ name: 'initdata', usage: USAGE, run })
