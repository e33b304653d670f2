// `podvm-mesh coordinator`: serve the mesh API. `podvm-mesh coordinator set-manifest`:
// sign and send a manifest update. Exit codes: 2 unusable input or a coordinator that
// cannot start, 1 an update the coordinator refused.

import { createPrivateKey, sign as cryptoSign } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import {
  CoordinatorError,
  DEFAULT_LEAF_LIFETIME_MS,
  MESH_API_PORT,
  manifestHashOf,
  manifestUpdateMessage,
  parseManifest,
  startCoordinator,
  type Manifest,
} from '../coordinator/index.js'
import { isMeshError } from '../errors.js'
import { createRootLogger } from '../logger.js'
import { connectMeshApi } from '../meshapi/index.js'
import { command, EXIT_NEGATIVE, UsageError, type CommandIo } from './command.js'
import { durationMs } from './duration.js'
import { evidenceProvider } from './evidence-provider.js'

const USAGE = `usage: podvm-mesh coordinator --state DIR [--manifest FILE] [options]
  --state DIR              persisted CA and manifest (created on first start, mode 0700)
  --manifest FILE          JSON manifest; required on first start, then the persisted one wins
  --listen ADDR            host:port (default 0.0.0.0:${MESH_API_PORT})
  --update-key FILE        public key (PEM) that signs SetManifest; fixed at first start
  --state-key FILE         32-byte key (raw or hex) sealing the state; default: the SEV-SNP
                           derived key (/dev/sev-guest), or a key beside the state for
                           simulated evidence. Required where the TEE derives none (TDX)
  --curve C                P-256 (default) or P-384 for root and mesh CAs
  --leaf-lifetime D        mesh certificate lifetime, e.g. 24h, 90s, 1500ms (default 24h)
  --rotation-delay D       from announcing a new mesh CA to issuing from it (default: leaf lifetime)
  --nonce-ttl D            challenge nonce lifetime (default 60s)
  --evidence KIND          auto (default), configfs-tsm, attestation-agent, simulated
  --simulated-hostdata HEX HOST_DATA of simulated evidence (32 B hex)
  --log-level LEVEL        pino level (default info)

usage: podvm-mesh coordinator set-manifest --coordinator HOST:PORT --manifest FILE --current FILE --generation N --signing-key FILE
  --current FILE           the manifest being replaced (the signature is bound to it)
  --generation N           its generation: 0 for the first manifest, then what the last set-manifest printed
  --signing-key FILE       private key (PEM) matching the coordinator's --update-key
`

/** `24h`, `90s`, `1500ms`, `2m` or plain milliseconds. */
export function parseDuration(text: string, field: string): number {
  const ms = durationMs(text)
  if (ms === undefined) {
    throw new CoordinatorError('COORDINATOR_BAD_REQUEST', `--${field} "${text}": expected a duration like 24h, 90s, 1500ms`, { field, value: text })
  }
  return ms
}

export const coordinatorCommand = command({
  name: 'coordinator',
  usage: USAGE,
  run: (argv, io) => (argv[0] === 'set-manifest' ? setManifest(argv.slice(1), io) : serve(argv)),
})

async function serve(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        state: { type: 'string' },
        manifest: { type: 'string' },
        listen: { type: 'string' },
        'update-key': { type: 'string' },
        'state-key': { type: 'string' },
        curve: { type: 'string' },
        'leaf-lifetime': { type: 'string' },
        'rotation-delay': { type: 'string' },
        'nonce-ttl': { type: 'string' },
        evidence: { type: 'string' },
        'simulated-hostdata': { type: 'string' },
        'log-level': { type: 'string' },
      },
      strict: true,
    }).values
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const log = createRootLogger({ level: values['log-level'] ?? 'info' })
  let running
  try {
    if (values.state === undefined) throw new UsageError('--state is required', { field: 'state' })
    const curve = values.curve ?? 'P-256'
    if (curve !== 'P-256' && curve !== 'P-384') throw new UsageError(`--curve ${curve}: expected P-256 or P-384`, { field: 'curve' })
    const manifest = values.manifest === undefined ? undefined : await readManifest(values.manifest)
    const updateKeyPem = values['update-key'] === undefined ? undefined : await readFile(values['update-key'], 'utf8')
    const kind = values.evidence ?? 'auto'
    if (values['simulated-hostdata'] !== undefined && kind !== 'simulated') {
      throw new UsageError('--simulated-hostdata needs --evidence simulated', { field: 'simulated-hostdata' })
    }
    const provider = await evidenceProvider(kind, { log, simulatedHostData: values['simulated-hostdata'] })
    running = await startCoordinator({
      stateDir: values.state,
      manifest,
      updateKeyPem,
      stateKeyPath: values['state-key'],
      provider,
      log,
      listen: values.listen,
      curve,
      leafLifetimeMs: values['leaf-lifetime'] === undefined ? DEFAULT_LEAF_LIFETIME_MS : parseDuration(values['leaf-lifetime'], 'leaf-lifetime'),
      rotationDelayMs: values['rotation-delay'] === undefined ? undefined : parseDuration(values['rotation-delay'], 'rotation-delay'),
      nonceTtlMs: values['nonce-ttl'] === undefined ? undefined : parseDuration(values['nonce-ttl'], 'nonce-ttl'),
    })
  } catch (err) {
    // Logged as well: a coordinator runs as a service, where the log is what is read.
    if (isMeshError(err) && err.code !== 'CLI_USAGE') log.fatal({ err, code: err.code, details: err.details }, 'coordinator cannot start')
    throw err
  }
  const r = running
  return new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'stopping')
      void r.close().then(() => resolve(0))
    }
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
  })
}

async function readManifest(path: string): Promise<Manifest> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (cause) {
    throw new CoordinatorError('COORDINATOR_MANIFEST_INVALID', `${path} cannot be read`, { source: path }, { cause })
  }
  return parseManifest(text, path)
}

async function setManifest(argv: string[], io: CommandIo): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        coordinator: { type: 'string' },
        manifest: { type: 'string' },
        current: { type: 'string' },
        generation: { type: 'string' },
        'signing-key': { type: 'string' },
      },
      strict: true,
    }).values
    for (const k of ['coordinator', 'manifest', 'current', 'generation', 'signing-key'] as const) {
      if (values[k] === undefined) throw new Error(`--${k} is required`)
    }
    if (!/^\d{1,15}$/.test(values.generation!)) throw new Error(`--generation ${values.generation}: expected a non-negative integer`)
  } catch (err) {
    throw new UsageError(`set-manifest: ${(err as Error).message}`)
  }
  try {
    const text = await readFile(values.manifest!)
    parseManifest(text.toString('utf8'), values.manifest) // refuse locally what the coordinator would refuse
    const current = await readFile(values.current!)
    const key = createPrivateKey(await readFile(values['signing-key']!, 'utf8'))
    const alg = key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256'
    const signature = cryptoSign(alg, manifestUpdateMessage(Number(values.generation), manifestHashOf(current), text), key)
    const conn = await connectMeshApi(values.coordinator!)
    try {
      const res = await conn.setManifest({ Manifest: text, Signature: signature })
      io.stdout.write(`${JSON.stringify({ manifestHash: Buffer.from(res.ManifestHash).toString('hex'), generation: res.ManifestGeneration })}\n`)
      return 0
    } finally {
      conn.close()
    }
  } catch (err) {
    // The coordinator's no is an answer, not unusable input.
    if (!isMeshError(err) || err.code !== 'COORDINATOR_REFUSED') throw err
    io.stderr.write(`podvm-mesh coordinator set-manifest: ${err.code}: ${err.message}\n`)
    return EXIT_NEGATIVE
  }
}
