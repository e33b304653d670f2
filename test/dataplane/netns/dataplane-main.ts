// The built-in data plane as a process, for network-namespace tests: the spec comes
// from deriveSpec, credentials from a Contrast-layout directory. Starts without
// credentials (connections are held) and takes line commands on stdin:
//   load   install credentials      stats   print stats as one JSON line
//   close  close() and exit
// Logs (pino JSON) go to stderr; stdout carries only JSON replies. An optional third
// argument is JSON: `timeouts` (partial) and further builtin data-plane options.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { pino } from 'pino'
import type { MeshConfig, Port } from '../../../src/config/types.js'
import { deriveSpec } from '../../../src/dataplane/index.js'
import { BuiltinDataPlane } from '../../../src/dataplane/builtin/index.js'

const [dir, captureArg, optionsArg] = process.argv.slice(2)
if (dir === undefined) throw new Error('usage: dataplane-main.ts <tls-config dir> [capture|-] [options JSON]')
const { timeouts, ...options } = JSON.parse(optionsArg ?? '{}') as { timeouts?: Record<string, number> } & Record<string, unknown>
const config: MeshConfig = {
  ingress: { enabled: true, rules: [] },
  egress: [],
  transparentEgress: { enabled: captureArg === 'capture', allowPlaintext: [] },
  admin: { port: 15020 as Port, exposed: false },
}
const spec = deriveSpec(config, { handshakeMs: 1000, connectMs: 3000, certificateWaitMs: 10_000, drainMs: 500, ...timeouts })
const log = pino({ level: 'debug' }, pino.destination(2))
const dp = new BuiltinDataPlane(spec, { ...options, log })
const reply = (obj: unknown): void => {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

await dp.start()
reply({ ready: true, state: dp.state, addresses: dp.addresses() })
createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = line.trim()
  if (cmd === 'load') {
    const read = (f: string): string => readFileSync(join(dir, f), 'utf8')
    dp.setCredentials({ meshCa: read('mesh-ca.pem'), certChain: read('certChain.pem'), key: read('key.pem') })
    reply({ loaded: true, state: dp.state })
  } else if (cmd === 'stats') {
    reply({ stats: dp.stats() })
  } else if (cmd === 'close') {
    void dp.close().then(() => {
      reply({ closed: true })
      process.exit(0)
    })
  }
})
