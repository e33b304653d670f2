import { describe, expect, it } from 'vitest'
import protobuf from 'protobufjs'
import { meshApiType } from '../../src/meshapi/index.js'

describe('meshapi wire format', () => {
  it("NewMeshCertResponse uses Contrast's field numbers (1 MeshCACert, 2 CertChain, 3 RootCACert, 4 WorkloadSecret)", () => {
    const t = meshApiType('NewMeshCertResponse')
    const bytes = t.encode(t.fromObject({ MeshCACert: Buffer.from('m'), CertChain: Buffer.from('c'), RootCACert: Buffer.from('r'), WorkloadSecret: Buffer.from('w') })).finish()
    // Each field: tag (number << 3 | wire type 2), length 1, the byte.
    expect(Buffer.from(bytes).toString('hex')).toBe('0a016d' + '120163' + '1a0172' + '220177')
  })

  it('NewMeshCertRequest keeps field 1 reserved', () => {
    const t = meshApiType('NewMeshCertRequest')
    expect(t.reserved).toEqual([[1, 1]])
    expect(Object.values(t.fields).map((f) => f.id).sort()).toEqual([2, 3, 4])
  })

  it('a decoder that knows only Contrast’s response reads ours', () => {
    const contrast = protobuf.parse(
      'syntax = "proto3"; package meshapi; message NewMeshCertResponse { bytes MeshCACert = 1; bytes CertChain = 2; bytes RootCACert = 3; bytes WorkloadSecret = 4; }',
    ).root.lookupType('meshapi.NewMeshCertResponse')
    const ours = meshApiType('NewMeshCertResponse')
    const decoded = contrast.decode(ours.encode(ours.fromObject({ CertChain: Buffer.from('chain') })).finish()) as unknown as { CertChain: Uint8Array }
    expect(Buffer.from(decoded.CertChain).toString()).toBe('chain')
  })
})
