import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { meshStatusPath, meshStatusWriter, parseMeshStatus, readMeshStatusSync, renderMeshStatus } from '../../src/pki/index.js'
import { logSink, thrown } from '../support.js'

describe('mesh status line', () => {
  it.each([
    [{ state: 'pending' as const }, 'pending\n'],
    [{ state: 'ready' as const }, 'ready\n'],
    [{ state: 'failed' as const, reason: 'COORDINATOR_POLICY_NOT_FOUND' }, 'failed COORDINATOR_POLICY_NOT_FOUND\n'],
  ])('%j <-> %j', (status, line) => {
    expect(renderMeshStatus(status)).toBe(line)
    expect(parseMeshStatus(line)).toEqual(status)
  })

  it.each(['', 'ready', 'ready\n\n', 'READY\n', 'failed\n', 'failed lower\n', 'failed A B\n', `failed ${'A'.repeat(65)}\n`, 'ready\npending\n', '{"state":"ready"}\n'])(
    'refuses %j',
    (text) => {
      expect(thrown(() => parseMeshStatus(text))).toMatchObject({ code: 'PKI_BAD_STATUS' })
    },
  )

  it('will not write a reason that is not a code', () => {
    expect(thrown(() => renderMeshStatus({ state: 'failed', reason: 'x\nready' }))).toMatchObject({ code: 'PKI_BAD_STATUS' })
  })

  it('lives next to the TLS directory, outside what containers see', () => {
    expect(meshStatusPath('/contrast/tls-config')).toBe('/contrast/mesh-status')
  })
})

describe('mesh status file', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mesh-status-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('reads a missing file as pending (the daemon has not started)', () => {
    expect(readMeshStatusSync(join(dir, 'nothing', 'mesh-status'))).toEqual({ state: 'pending' })
  })

  it('writes in call order, skips repeats, and a reader sees the last status', async () => {
    const sink = logSink()
    const log = pino({ level: 'info' }, sink)
    const tlsDir = join(dir, 'a', 'tls-config')
    const w = meshStatusWriter(tlsDir, log)
    void w.set({ state: 'pending' })
    void w.set({ state: 'failed', reason: 'COORDINATOR_POLICY_NOT_FOUND' })
    await w.set({ state: 'ready' })
    await w.set({ state: 'ready' })
    expect(await readFile(join(dir, 'a', 'mesh-status'), 'utf8')).toBe('ready\n')
    expect(readMeshStatusSync(meshStatusPath(tlsDir))).toEqual({ state: 'ready' })
    expect(sink.records.filter((r) => r['msg'] === 'mesh status written').map((r) => r['status'])).toEqual([
      'pending',
      'failed COORDINATOR_POLICY_NOT_FOUND',
      'ready',
    ])
  })

  it('a garbled file is an error, not a status', async () => {
    await writeFile(join(dir, 'garbled'), 'rea')
    expect(thrown(() => readMeshStatusSync(join(dir, 'garbled')))).toMatchObject({ code: 'PKI_BAD_STATUS' })
  })
})
