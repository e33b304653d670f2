// `podvm-mesh render envoy`: print the Envoy bootstrap the daemon would run for a mesh
// config (same config inputs as `check`), and optionally write the SDS secret files for
// a Contrast-layout certificate directory, so the pair can be tried with a real Envoy.

import { CONFIG_USAGE, configFromArgs } from '../config/index.js'
import { deriveSpec } from '../dataplane/index.js'
import { DEFAULT_ENVOY_ADMIN_PORT, DEFAULT_ENVOY_WORK_DIR, renderBootstrap, writeSdsResources } from '../dataplane/envoy/index.js'
import { readTlsDir } from '../pki/index.js'
import { command, UsageError } from './command.js'

const USAGE = `usage: podvm-mesh render envoy [config flags | --file F] [--sds-dir DIR [--tls-dir DIR]] [--envoy-admin-port N]

Prints the Envoy v3 bootstrap (JSON) for the mesh configuration.
  --sds-dir DIR           where the bootstrap expects its SDS files (default ${DEFAULT_ENVOY_WORK_DIR}/sds)
  --tls-dir DIR           with --sds-dir: write the SDS files there from DIR's
                          mesh-ca.pem, certChain.pem and key.pem
  --envoy-admin-port N    Envoy's own admin port on 127.0.0.1 (default ${DEFAULT_ENVOY_ADMIN_PORT})

${CONFIG_USAGE}`

const OPTIONS = {
  'sds-dir': { type: 'string' },
  'tls-dir': { type: 'string' },
  'envoy-admin-port': { type: 'string' },
} as const

export const renderEnvoyCommand = command({
  name: 'render envoy',
  usage: USAGE,
  run: async (argv, io) => {
    const { config, values } = configFromArgs(argv, io.env, { options: OPTIONS })
    const sdsDir = values['sds-dir'] ?? `${DEFAULT_ENVOY_WORK_DIR}/sds`
    const tlsDir = values['tls-dir']
    if (tlsDir !== undefined && values['sds-dir'] === undefined) {
      throw new UsageError('--tls-dir needs --sds-dir (refusing to write into the default runtime directory)')
    }
    const portText = values['envoy-admin-port']
    const adminPort = portText === undefined ? DEFAULT_ENVOY_ADMIN_PORT : Number(portText)
    if (portText !== undefined && !/^\d+$/.test(portText)) throw new UsageError(`--envoy-admin-port ${JSON.stringify(portText)} is not a number`)
    const bootstrap = renderBootstrap(deriveSpec(config), { sdsDir, adminPort })
    if (tlsDir !== undefined) {
      writeSdsResources(sdsDir, (await readTlsDir(tlsDir)).material)
      io.stderr.write(`podvm-mesh render envoy: wrote SDS files to ${sdsDir}\n`)
    }
    io.stdout.write(`${JSON.stringify(bootstrap, null, 2)}\n`)
    return 0
  },
})
