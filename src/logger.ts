// The one root logger. Components receive it and call log.child({ component }).
// MESH_TRACE=dataplane,netfilter turns those components' children to level trace.

import { pino, type Logger, type DestinationStream } from 'pino'

export interface LoggerOptions {
  readonly level?: string
  /** Comma-separated component names (MESH_TRACE). */
  readonly trace?: string
  readonly destination?: DestinationStream
}

// Key material must never reach a log line, whatever object a caller passes in.
const REDACT = ['key', '*.key', 'material.key', 'privateKey', '*.privateKey', 'workloadSecret', '*.workloadSecret']

export function createRootLogger(opts: LoggerOptions = {}): Logger {
  const traced = new Set(
    (opts.trace ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  )
  const options = {
    level: traced.size > 0 ? 'trace' : (opts.level ?? 'info'),
    base: { svc: 'podvm-mesh' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  }
  const root = opts.destination === undefined ? pino(options) : pino(options, opts.destination)
  if (traced.size === 0) return root
  // Children of traced components log at trace; everything else keeps the base level.
  const baseLevel = opts.level ?? 'info'
  const originalChild = root.child.bind(root)
  root.level = baseLevel
  root.child = ((bindings: Record<string, unknown>, childOpts?: Record<string, unknown>) => {
    const component = typeof bindings['component'] === 'string' ? bindings['component'] : undefined
    const level = component !== undefined && traced.has(component) ? 'trace' : undefined
    return originalChild(bindings, level === undefined ? childOpts : { ...childOpts, level })
  }) as Logger['child']
  return root
}
