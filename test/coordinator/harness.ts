// Shared setup for coordinator tests: a manifest, simulated providers with chosen
// HOSTDATA, and a coordinator on a loopback port with its state in a temp directory.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { SimulatedProvider } from '../../src/attestation/index.js'
import { parseManifest, startCoordinator, type CoordinatorOptions, type RunningCoordinator } from '../../src/coordinator/index.js'
import { logSink } from '../support.js'

export const HOST_A = 'aa'.repeat(32)
export const HOST_B = 'bb'.repeat(32)
export const HOST_UNKNOWN = 'ee'.repeat(32)
export const HOST_COORDINATOR = 'cc'.repeat(32)

export function manifestText(extra: Record<string, unknown> = {}, policies?: Record<string, unknown>): string {
  return JSON.stringify({
    policies: policies ?? {
      [HOST_A]: { sans: ['a.mesh.test'], workloadSecretId: 'default/a' },
      [HOST_B]: { sans: ['b.mesh.test', 'spiffe://mesh/b', '10.9.9.9'] },
    },
    acceptSimulated: true,
    ...extra,
  })
}

export function testLog(): { log: Logger; records: Record<string, unknown>[] } {
  const sink = logSink()
  return { log: pino({ level: 'debug' }, sink), records: sink.records }
}

/**
 * A simulated TEE with the given HOST_DATA. `nowMs` pins the start of its certificates'
 * validity: a test that pins the coordinator's clock must pin this one to the same
 * instant, or the chain is "not yet valid" (or expired) depending on the day it runs.
 */
export async function simulated(hostHex: string, nowMs?: number): Promise<SimulatedProvider> {
  return SimulatedProvider.create({
    hostData: Buffer.from(hostHex, 'hex'),
    ...(nowMs !== undefined ? { now: new Date(nowMs) } : {}),
  })
}

export interface TestCoordinator {
  readonly running: RunningCoordinator
  readonly address: string
  readonly stateDir: string
  readonly provider: SimulatedProvider
  readonly records: Record<string, unknown>[]
  restart(overrides?: Partial<CoordinatorOptions>): Promise<TestCoordinator>
  close(): Promise<void>
}

export async function startTestCoordinator(
  overrides: Partial<CoordinatorOptions> = {},
  stateDir?: string,
): Promise<TestCoordinator> {
  const dir = stateDir ?? (await mkdtemp(join(tmpdir(), 'pmco-state-')))
  const provider = await simulated(HOST_COORDINATOR)
  const { log, records } = testLog()
  const running = await startCoordinator({
    stateDir: dir,
    manifest: parseManifest(manifestText()),
    provider,
    log,
    listen: '127.0.0.1:0',
    leafLifetimeMs: 60_000,
    ...overrides,
  })
  const self: TestCoordinator = {
    running,
    address: `127.0.0.1:${running.port}`,
    stateDir: dir,
    provider,
    records,
    restart: async (o = {}) => {
      await running.close()
      return startTestCoordinator({ ...overrides, ...o }, dir)
    },
    close: async () => {
      await running.close()
    },
  }
  return self
}

export async function removeState(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}
