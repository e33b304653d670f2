// `podvm-mesh run`: the daemon. Exit codes: 2 for a config or flags that cannot be
// used (nothing is applied), 1 when boot fails after the baseline went in (it stays in).

import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import {
  AgentError,
  chooseDataPlane,
  createDataPlane,
  exemptCoordinator,
  pendingLimitsFromArgs,
  positiveIntegerFlag,
  measuredConfig,
  MeshDaemon,
  renderMetrics,
  startAdminServer,
  type MeasuredConfig,
} from '../agent/index.js'
import type { AttestedRun } from '../agent/attested-certs.js'
import { CONFIG_USAGE, configFromArgs } from '../config/index.js'
import { RTMR_PIN } from '../config/rtmr-pin.js'
import { DEFAULT_PENDING_LIMITS, DEFAULT_TIMEOUTS, deriveSpec, type DataPlane } from '../dataplane/index.js'
import { isMeshError } from '../errors.js'
import { createRootLogger } from '../logger.js'
// Not the meshapi barrel: it loads gRPC and the verifiers, which `run` loads only with --coordinator.
import { parseCoordinatorIdentity as parseCoordinatorIdentityText, type CoordinatorIdentity } from '../meshapi/identity.js'
import { execRunner } from '../netfilter/index.js'
import { DEFAULT_TLS_DIR, meshStatusWriter, TLS_FILES } from '../pki/index.js'
import { command, type CommandIo } from './command.js'
import { durationMs } from './duration.js'

const ATTESTED_OPTIONS = {
  coordinator: { type: 'string' },
  'coordinator-identity': { type: 'string' },
  'coordinator-measurement': { type: 'string', multiple: true },
  'coordinator-rtmr': { type: 'string', multiple: true },
  evidence: { type: 'string' },
  'simulated-hostdata': { type: 'string' },
} as const

const ATTESTED_USAGE = `  --coordinator HOST:PORT     obtain certificates from this coordinator (attested), renew at 2/3 lifetime
  --coordinator-identity ID  policy:<hex> (its policy hash) or root-ca:<sha256 of its root CA>
  --coordinator-measurement HEX  its launch measurement (SNP MEASUREMENT / TDX MRTD); repeatable;
                             required with a policy pin on real hardware
  --coordinator-rtmr I=HEX   TDX: an RTMR value it must report (1 kernel, 2 command line and
                             initrd: both required with a policy pin on TDX); repeatable
  --evidence KIND            auto (default), configfs-tsm, attestation-agent, simulated (no TEE: labs only)
  --simulated-hostdata HEX   HOST_DATA (32 B) of simulated evidence
`

const USAGE = `usage: podvm-mesh run [config] [--tls-dir DIR] [--dataplane KIND] [--log-level LEVEL]
  --tls-dir DIR      certificates in Contrast's layout (default ${DEFAULT_TLS_DIR})
  --dataplane KIND   auto (default: Envoy when an executable is found, else builtin), builtin, envoy
  --envoy-bin PATH   Envoy executable (default: ENVOY_BIN, else envoy on PATH)
  --work-dir DIR     Envoy's bootstrap and SDS files (default /run/podvm-mesh/envoy)
  --envoy-concurrency N
                     Envoy's worker threads (default: one per CPU of the guest)
  --log-level LEVEL  pino level (default info); MESH_TRACE=component,... for trace
  --drain D          after SIGTERM, how long established connections may go on (new ones
                     are already shut out), e.g. 30s, 1500ms (default ${DEFAULT_TIMEOUTS.drainMs / 1000}s)
  --max-pending N    builtin data plane: unauthenticated connections per listener; beyond
                     it the oldest is shed (default ${DEFAULT_PENDING_LIMITS.pendingPerListener})
  --max-pending-per-source N
                     builtin data plane: unauthenticated ingress connections per source
                     address; beyond it new ones are refused (default ${DEFAULT_PENDING_LIMITS.pendingPerSource})
  --initdata SRC     the measured mesh config and coordinator pin from Kata initdata:
                     auto (find the initdata block device), a block device/image, or a .toml
                     document; excludes the config flags, --file and --coordinator
${ATTESTED_USAGE}${CONFIG_USAGE}`

type AttestedValues = { readonly [K in keyof typeof ATTESTED_OPTIONS]?: K extends 'coordinator-measurement' | 'coordinator-rtmr' ? readonly string[] : string }

/** The attested-certificate settings from `run`'s flags (or the measured pin); undefined without --coordinator. */
export function attestedSettings(values: AttestedValues):
  | {
      address: string
      identity: CoordinatorIdentity
      measurements: readonly string[] | undefined
      rtmr: readonly string[] | undefined
      evidence: string
      simulatedHostData: string | undefined
    }
  | undefined {
  if (values.coordinator === undefined) {
    // The attested flags mean nothing without --coordinator; say so instead of ignoring them.
    for (const k of ['coordinator-identity', 'coordinator-measurement', 'coordinator-rtmr', 'evidence', 'simulated-hostdata'] as const) {
      if (values[k] !== undefined) throw new AgentError('AGENT_BAD_ARGS', `--${k} needs --coordinator`, { field: k })
    }
    return undefined
  }
  if (!/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(values.coordinator)) {
    throw new AgentError('AGENT_BAD_ARGS', `--coordinator ${values.coordinator}: expected HOST:PORT`, { field: 'coordinator', value: values.coordinator })
  }
  if (values['coordinator-identity'] === undefined) {
    throw new AgentError('AGENT_BAD_ARGS', '--coordinator needs --coordinator-identity (never trust an unverified coordinator)', { field: 'coordinator-identity' })
  }
  const identity = coordinatorIdentityFlag(values['coordinator-identity'])
  const measurements = values['coordinator-measurement']?.map((m) => m.trim().toLowerCase())
  const bad = measurements?.find((m) => !/^[0-9a-f]{96}$/.test(m))
  if (bad !== undefined) {
    throw new AgentError('AGENT_BAD_ARGS', `--coordinator-measurement ${bad}: expected hex of 48 bytes`, { field: 'coordinator-measurement', value: bad })
  }
  const rtmr = values['coordinator-rtmr']?.map((m) => m.trim().toLowerCase())
  const badRtmr = rtmr?.find((m) => !RTMR_PIN.test(m))
  if (badRtmr !== undefined) {
    throw new AgentError('AGENT_BAD_ARGS', `--coordinator-rtmr ${badRtmr}: expected <index 0-3>=<hex of 48 bytes>`, { field: 'coordinator-rtmr', value: badRtmr })
  }
  const evidence = values.evidence ?? 'auto'
  if (values['simulated-hostdata'] !== undefined && evidence !== 'simulated') {
    throw new AgentError('AGENT_BAD_ARGS', '--simulated-hostdata needs --evidence simulated', { field: 'simulated-hostdata' })
  }
  return { address: values.coordinator, identity, measurements, rtmr, evidence, simulatedHostData: values['simulated-hostdata'] }
}

/** `--coordinator-identity`: see parseCoordinatorIdentity. */
export function coordinatorIdentityFlag(text: string): CoordinatorIdentity {
  const identity = parseCoordinatorIdentityText(text)
  if (identity === undefined) {
    throw new AgentError('AGENT_BAD_ARGS', `coordinator identity "${text}": expected policy:<hex of 32/48/64 B> or root-ca:<sha256 hex>`, {
      field: 'coordinator-identity',
      value: text,
    })
  }
  return identity
}

/**
 * With --coordinator: the TLS directory is emptied of our four files first (only
 * certificates this boot attested for may open the pod), and the attested-certificate
 * client is loaded — only then: gRPC and the verifiers weigh ~20 MB of RSS.
 */
async function startAttested(
  settings: NonNullable<ReturnType<typeof attestedSettings>>,
  ctx: { tlsDir: string; log: Logger; measuredConfigDigest?: Uint8Array; onDefinitiveFailure?: (reason: string) => void },
): Promise<AttestedRun> {
  const { evidenceProvider } = await import('./evidence-provider.js')
  const provider = await evidenceProvider(settings.evidence, { log: ctx.log, simulatedHostData: settings.simulatedHostData })
  for (const f of Object.values(TLS_FILES)) await rm(join(ctx.tlsDir, f), { force: true })
  const { AttestedCertificates, attestedRun } = await import('../agent/attested-certs.js')
  const lifecycle = new AttestedCertificates({
    address: settings.address,
    identity: settings.identity,
    coordinatorMeasurements: settings.measurements,
    coordinatorRtmr: settings.rtmr,
    provider,
    // A pod that itself runs without a TEE may talk to a simulated coordinator; a real one never.
    acceptSimulatedCoordinator: settings.evidence === 'simulated',
    tlsDir: ctx.tlsDir,
    log: ctx.log,
    measuredConfigDigest: ctx.measuredConfigDigest,
    onDefinitiveFailure: ctx.onDefinitiveFailure,
  })
  return attestedRun(lifecycle, ctx.log)
}

/** `--drain`: the drain period in ms (DEFAULT_TIMEOUTS.drainMs without the flag). */
export function drainFlag(text: string | undefined): number {
  if (text === undefined) return DEFAULT_TIMEOUTS.drainMs
  const ms = durationMs(text)
  if (ms === undefined) throw new AgentError('AGENT_BAD_ARGS', `--drain "${text}": expected a duration like 30s, 1500ms`, { field: 'drain', value: text })
  return ms
}

export const runCommand = command({ name: 'run', usage: USAGE, run: runDaemon })

async function runDaemon(argv: string[], io: CommandIo): Promise<number> {
  const parsed = configFromArgs(argv, io.env, {
    options: {
      'tls-dir': { type: 'string' },
      dataplane: { type: 'string' },
      'envoy-bin': { type: 'string' },
      'work-dir': { type: 'string' },
      'envoy-concurrency': { type: 'string' },
      'log-level': { type: 'string' },
      drain: { type: 'string' },
      'max-pending': { type: 'string' },
      'max-pending-per-source': { type: 'string' },
      initdata: { type: 'string' },
      ...ATTESTED_OPTIONS,
    },
  })
  const choice = chooseDataPlane(parsed.values.dataplane ?? 'auto', io.env, parsed.values['envoy-bin'])
  const limits = pendingLimitsFromArgs(parsed.values)
  const envoyConcurrency = positiveIntegerFlag('envoy-concurrency', parsed.values['envoy-concurrency'])
  const drainMs = drainFlag(parsed.values.drain)
  const measured: MeasuredConfig | undefined = measuredConfig(parsed)
  const attestedValues = measured?.attestedValues ?? parsed.values
  // Every flag is checked before anything is applied or started.
  const attested = attestedSettings(attestedValues)
  const log = createRootLogger({
    level: parsed.values['log-level'] ?? 'info',
    trace: io.env['MESH_TRACE'],
  })
  const coordinatorAddress = attestedValues.coordinator
  let config = measured?.config ?? parsed.config
  if (coordinatorAddress !== undefined) {
    try {
      config = await exemptCoordinator(config, coordinatorAddress)
    } catch (err) {
      // Before the pod network exists the name may not resolve: exit, and let the
      // service manager start us again; the baseline stays in meanwhile.
      io.stderr.write(`podvm-mesh run: cannot resolve the coordinator ${coordinatorAddress}: ${err instanceof Error ? err.message : String(err)}\n`)
      return 1
    }
  }
  const tlsDir = parsed.values['tls-dir'] ?? DEFAULT_TLS_DIR
  log.info({ config, from: measured === undefined ? parsed.from : 'initdata', tlsDir, initdata: measured?.source, digest: measured?.digestHex }, 'starting')

  // What the guest OCI hook waits for (pki/mesh-status.ts): pending until ready; failed
  // when boot fails or the coordinator refuses this pod.
  const status = meshStatusWriter(tlsDir, log)
  void status.set({ state: 'pending' })
  // With --coordinator, attested certificates are written into tlsDir, where the daemon waits for them.
  const certificates =
    attested === undefined
      ? undefined
      : await startAttested(attested, {
          tlsDir,
          log,
          measuredConfigDigest: measured?.digest,
          onDefinitiveFailure: (reason) => void status.set({ state: 'failed', reason }),
        })
  const dataPlane: DataPlane = await createDataPlane(choice, deriveSpec(config, { ...DEFAULT_TIMEOUTS, drainMs }), {
    log,
    limits,
    workDir: parsed.values['work-dir'],
    envoyConcurrency,
  })
  const daemon = new MeshDaemon({ config, tlsDir, dataPlane, runner: execRunner, log })
  daemon.onTransition((_from, to) => {
    if (to === 'waiting-certificates') certificates?.start()
    if (to === 'ready') void status.set({ state: 'ready' })
    if (to === 'draining') void status.set({ state: 'pending' })
  })
  const admin = await startAdminServer(
    config.admin,
    {
      // Envoy restarting: not ready (its listeners are gone), still healthy unless it crash-loops.
      healthy: () => daemon.state !== 'failed' && dataPlane.healthy(),
      ready: () => daemon.state === 'ready' && dataPlane.live,
      status: () => ({
        state: daemon.state,
        dataPlane: dataPlane.state,
        dataPlaneLive: dataPlane.live,
        certificate:
          daemon.certificate === undefined
            ? null
            : { subject: daemon.certificate.subject, notAfter: daemon.certificate.notAfter.toISOString() },
      }),
      // Scraped per request: Envoy's counters live in Envoy, read from its loopback admin.
      metrics: async () =>
        renderMetrics(dataPlane.state === 'created' ? undefined : await dataPlane.refreshStats().catch(() => dataPlane.stats()), {
          ready: daemon.state === 'ready',
          state: daemon.state,
          startedAt: daemon.startedAt,
          certificateReloads: daemon.certificateReloads,
          certificateNotAfter: daemon.certificate?.notAfter,
        }),
    },
    log,
  )

  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'stopping: draining, then back to the closed baseline')
      certificates?.stop()
      void daemon
        .stop()
        .then(() => admin.close())
        .then(
          () => resolve(0),
          (err: unknown) => {
            log.error({ err }, 'stop failed')
            resolve(1)
          },
        )
    }
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
  })

  try {
    await daemon.start()
  } catch (err) {
    log.fatal({ err }, 'boot failed; the pod stays closed')
    const code = isMeshError(err) && /^[A-Z][A-Z0-9_]{0,63}$/.test(err.code) ? err.code : 'BOOT_FAILED'
    await status.set({ state: 'failed', reason: code })
    certificates?.stop()
    await admin.close()
    dataPlane.destroy()
    return 1
  }
  log.info({ admin: admin.address }, 'ready')
  return stopped
}
