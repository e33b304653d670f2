import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { writeFileAtomic } from '../../src/pki/index.js'
import { thrown } from '../support.js'

describe('writeFileAtomic', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pm-atomic-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('replaces the content with the mode asked for, whatever the umask', () => {
    const path = join(dir, 'key.pem')
    const umask = process.umask(0o077)
    try {
      writeFileAtomic(path, 'one', 0o444)
      writeFileAtomic(path, Buffer.from('two'), 0o444)
    } finally {
      process.umask(umask)
    }
    expect(readFileSync(path, 'utf8')).toBe('two')
    expect(statSync(path).mode & 0o777).toBe(0o444)
  })

  it('fails leaving the target and no temp file behind (here: the target is a directory)', () => {
    const path = join(dir, 'occupied')
    mkdirSync(path)
    expect(thrown(() => writeFileAtomic(path, 'x', 0o644))).toMatchObject({ code: 'EISDIR' })
    expect(statSync(path).isDirectory()).toBe(true)
    expect(readdirSync(dir).filter((n) => n.includes('occupied'))).toEqual(['occupied'])
  })
})
