import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { describe, it, expect } from 'vitest'
import { findInitdataBlockDevice, readInitdataBlockDevice } from '../../src/agent/initdata-device.js'
import { INITDATA_DOC as DOC, initdataBlock as block } from '../fixtures/initdata.js'
import { thrown } from '../support.js'

describe('readInitdataBlockDevice', () => {
  it('readInitdataBlockDevice reads a device image', () => {
    const dir = mkdtempSync(join(tmpdir(), 'initdata-'))
    try {
      const path = join(dir, 'vdb')
      writeFileSync(path, Buffer.concat([block(gzipSync(DOC)), Buffer.alloc(4096)]))
      expect(readInitdataBlockDevice(path).data['aa.toml']).toBe('[token_configs]\n')
      writeFileSync(path, block(gzipSync(DOC)).subarray(0, 30))
      expect(thrown(() => readInitdataBlockDevice(path))).toMatchObject({ code: 'INITDATA_TRUNCATED', details: { field: 'body' } })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('findInitdataBlockDevice', () => {
  it('finds the first whole disk with the magic, ignoring partitions, other names and empty disks', () => {
    const dir = mkdtempSync(join(tmpdir(), 'initdata-dev-'))
    try {
      writeFileSync(join(dir, 'vda'), Buffer.alloc(1024))
      writeFileSync(join(dir, 'vdb1'), block(gzipSync(DOC)))
      writeFileSync(join(dir, 'loop0'), block(gzipSync(DOC)))
      writeFileSync(join(dir, 'vdc'), Buffer.from('init'))
      expect(findInitdataBlockDevice(dir)).toBeUndefined()
      writeFileSync(join(dir, 'vdd'), block(gzipSync(DOC)))
      writeFileSync(join(dir, 'sdb'), block(gzipSync(DOC)))
      expect(findInitdataBlockDevice(dir)).toBe(join(dir, 'sdb'))
      rmSync(join(dir, 'sdb'))
      expect(findInitdataBlockDevice(dir)).toBe(join(dir, 'vdd'))
      expect(readInitdataBlockDevice(join(dir, 'vdd')).algorithm).toBe('sha384')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a missing directory gives undefined', () => {
    expect(findInitdataBlockDevice(join(tmpdir(), 'no-such-dev-dir-podvm'))).toBeUndefined()
  })
})
