// Reading Kata's initdata block device: the file I/O around config/initdata.ts, which
// parses and checks the bytes and does no I/O itself.

import { closeSync, openSync, readdirSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { INITDATA_HEADER_BYTES, INITDATA_MAGIC, initdataBlockBodyLength, initdataFromBlock, type InitdataDocument } from '../config/index.js'

/** Reads the block device (or an image of it) without reading more than the header announces. */
export function readInitdataBlockDevice(path: string): InitdataDocument {
  const fd = openSync(path, 'r')
  try {
    const header = Buffer.alloc(INITDATA_HEADER_BYTES)
    const got = readSync(fd, header, 0, INITDATA_HEADER_BYTES, 0)
    const length = initdataBlockBodyLength(header.subarray(0, got))
    const block = Buffer.alloc(INITDATA_HEADER_BYTES + length)
    header.copy(block)
    let have = INITDATA_HEADER_BYTES
    while (have < block.length) {
      const n = readSync(fd, block, have, block.length - have, have)
      if (n === 0) break
      have += n
    }
    return initdataFromBlock(block.subarray(0, have))
  } finally {
    closeSync(fd)
  }
}

/** Whole virtio/SCSI disks, where the Kata runtime attaches the initdata device. */
const DISK_NAME = /^(?:vd|sd)[a-z]+$/

/**
 * The first whole disk under `devDir` that starts with the `initdata` magic, in name
 * order; undefined when none does. Unreadable devices are passed over.
 */
export function findInitdataBlockDevice(devDir = '/dev'): string | undefined {
  let names: string[]
  try {
    names = readdirSync(devDir).filter((n) => DISK_NAME.test(n)).sort()
  } catch {
    return undefined
  }
  for (const name of names) {
    const path = join(devDir, name)
    let fd: number | undefined
    try {
      fd = openSync(path, 'r')
      const magic = Buffer.alloc(8)
      if (readSync(fd, magic, 0, 8, 0) === 8 && magic.toString('latin1') === INITDATA_MAGIC) return path
    } catch {
      // Not readable (or gone): not ours.
    } finally {
      if (fd !== undefined) closeSync(fd)
    }
  }
  return undefined
}
