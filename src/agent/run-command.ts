// `podvm-mesh run`: the daemon. Exit codes: 2 for a config that cannot be used
// (nothing is applied), 1 when boot fails after the baseline went in (it stays in).

import type { CommandIo } from '../cli.js'
import { CONFIG_USAGE, ConfigError, configFromArgs, formatIssue } from '../config/index.js'
import { measuredConfig, type MeasuredConfig } from './measured-config.js'
import { deriveSpec, type DataPlane } from '../dataplane/index.js'
import { execRunner } from '../netfilter/index.js'
import { isMeshError } from '../errors.js'
import { DEFAULT_TLS_DIR, meshStatusWriter } from '../pki/index.js'
import { startAdminServer } from './admin-server.js'
import type { AttestedRun } from './attested-certs.js'
import { ATTESTED_OPTIONS, ATTESTED_USAGE, requireCoordinatorForAttestedFlags } from './attested-options.js'
import { exemptCoordinator } from './coordinator-exempt.js'
import { chooseDataPlane, createDataPlane, type DataPlaneChoice } from './dataplane-select.js'
import { MeshDaemon } from './daemon.js'
import { createRootLogger } from './logger.js'
import { renderMetrics } from './metrics.js'

const USAGE = `usage: podvm-mesh run [config] [--tls-dir DIR] [--dataplane KIND] [--log-level LEVEL]
  --tls-dir DIR      certificates in Contrast's layout (default ${DEFAULT_TLS_DIR})
  --dataplane KIND   auto (default: Envoy when an executable is found, else builtin), builtin, envoy
  --envoy-bin PATH   Envoy executable (default: ENVOY_BIN, else envoy on PATH)
  --work-dir DIR     Envoy's bootstrap and SDS files (default /run/podvm-mesh/envoy)
  --log-level LEVEL  pino level (default info); MESH_TRACE=component,... for trace
  --initdata SRC     the measured mesh config and coordinator pin from Kata initdata:
                     auto (find the initdata block device), a block device/image, or a .toml
                     document; excludes the config flags, --file and --coordinator
${ATTESTED_USAGE}${CONFIG_USAGE}`

export async function runCommand(argv: string[], io: CommandIo): Promise<number> {
  // Before reading the config: help must work even where the environment's config is bad.
  if (argv.includes('--help')) {
    io.stdout.write(USAGE)
    return 0
  }
  let parsed
  try {
    parsed = configFromArgs(argv, io.env, {
      options: {
        'tls-dir': { type: 'string' },
        dataplane: { type: 'string' },
        'envoy-bin': { type: 'string' },
        'work-dir': { type: 'string' },
        'log-level': { type: 'string' },
        initdata: { type: 'string' },
        ...ATTESTED_OPTIONS,
      },
    })
  } catch (err) {
    if (err instanceof ConfigError) {
      const issues = (err.details['issues'] ?? []) as Parameters<typeof formatIssue>[0][]
      io.stderr.write(`podvm-mesh run: invalid configuration, nothing applied\n${issues.map((i) => `  ${formatIssue(i)}\n`).join('')}`)
      return 2
    }
    throw err
  }
  let choice: DataPlaneChoice
  let measured: MeasuredConfig | undefined
  try {
    choice = chooseDataPlane(parsed.values.dataplane ?? 'auto', io.env, parsed.values['envoy-bin'])
    measured = measuredConfig(parsed)
  } catch (err) {
    if (!isMeshError(err)) throw err
    io.stderr.write(`podvm-mesh run: ${err.message}\n`)
    for (const i of (err.details['issues'] ?? []) as Parameters<typeof formatIssue>[0][]) io.stderr.write(`  ${formatIssue(i)}\n`)
    return 2
  }
  const log = createRootLogger({
    level: parsed.values['log-level'] ?? 'info',
    ...(io.env['MESH_TRACE'] !== undefined ? { trace: io.env['MESH_TRACE'] } : {}),
  })
  const attestedValues = measured?.attestedValues ?? parsed.values
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
  log.info({ config, from: measured === undefined ? parsed.from : 'initdata', tlsDir, ...(measured !== undefined ? { initdata: measured.source, digest: measured.digestHex } : {}) }, 'starting')

  // What the guest OCI hook waits for (pki/mesh-status.ts): pending until ready; failed
  // when boot fails or the coordinator refuses this pod.
  const status = meshStatusWriter(tlsDir, log)
  void status.set({ state: 'pending' })
  const dataPlane: DataPlane = createDataPlane(choice, deriveSpec(config), {
    log,
    ...(parsed.values['work-dir'] !== undefined ? { workDir: parsed.values['work-dir'] } : {}),
  })
  const daemon = new MeshDaemon({ config, tlsDir, dataPlane, runner: execRunner, log })
  // With --coordinator, attested certificates are written into tlsDir, where the daemon waits for them.
  let attested: AttestedRun | undefined
  try {
    if (attestedValues.coordinator === undefined) {
      requireCoordinatorForAttestedFlags(attestedValues)
    } else {
      // Loaded only when used: the gRPC client and the verifiers weigh ~20 MB of RSS.
      const { startAttestedCertificates } = await import('./attested-certs.js')
      attested = await startAttestedCertificates(attestedValues, {
        tlsDir,
        log,
        ...(measured !== undefined ? { measuredConfigDigest: measured.digest } : {}),
        onDefinitiveFailure: (reason) => void status.set({ state: 'failed', reason }),
      })
    }
  } catch (err) {
    if (!isMeshError(err)) throw err
    io.stderr.write(`podvm-mesh run: ${err.message}\n`)
    return 2
  }
  daemon.onTransition((_from, to) => {
    if (to === 'waiting-certificates') attested?.start()
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
          ...(daemon.certificate !== undefined ? { certificateNotAfter: daemon.certificate.notAfter } : {}),
        }),
    },
    log,
  )

  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'stopping: draining, then back to the closed baseline')
      attested?.stop()
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
    attested?.stop()
    await admin.close()
    dataPlane.destroy()
    return 1
  }
  log.info({ admin: admin.address }, 'ready')
  return stopped
}
