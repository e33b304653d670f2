// The wire definition of `meshapi.MeshAPI`. NewMeshCertResponse keeps Contrast's field
// names and numbers, so a Contrast-aware client reads our answer unchanged. Contrast's
// request is empty (field 1 reserved, once PeerPublicKeyHash) because its evidence rides
// in aTLS; Node's TLS cannot carry those nonces, so ours carries evidence, public key and
// nonce as fields from 2 on. Challenge and SetManifest are ours.
//
// Kept as proto text in code (not a .proto file) so the built tree needs no asset copy.

import * as grpc from '@grpc/grpc-js'
import protobuf from 'protobufjs'

export const MESH_API_PROTO = `
syntax = "proto3";
package meshapi;

service MeshAPI {
  rpc NewMeshCert(NewMeshCertRequest) returns (NewMeshCertResponse);
  rpc Challenge(ChallengeRequest) returns (ChallengeResponse);
  rpc SetManifest(SetManifestRequest) returns (SetManifestResponse);
}

message Evidence {
  string Tee = 1;          // snp | tdx | simulated-snp
  bytes Raw = 2;           // SNP report or TDX quote
  bytes Vcek = 3;          // DER, SNP
  bytes Vlek = 4;          // DER, SNP
  repeated bytes Chain = 5; // DER, ASK then ARK
  string Provider = 6;
}

message NewMeshCertRequest {
  reserved 1;
  bytes Nonce = 2;       // from Challenge, single use
  bytes PublicKey = 3;   // PKIX DER of the key the leaf is for
  Evidence Evidence = 4; // REPORT_DATA = SHA-512(PublicKey || Nonce)
}

message NewMeshCertResponse {
  bytes MeshCACert = 1;
  bytes CertChain = 2;
  bytes RootCACert = 3;
  bytes WorkloadSecret = 4;
}

message ChallengeRequest {
  bytes ClientNonce = 1; // the coordinator's evidence binds its TLS key to this
}

message ChallengeResponse {
  bytes Nonce = 1;              // for NewMeshCert
  int64 NonceExpiresUnixMs = 2;
  Evidence Evidence = 3;        // REPORT_DATA = SHA-512(TLS public key || ClientNonce)
  bytes RootCACert = 4;         // issuer of the coordinator's TLS certificate
}

message SetManifestRequest {
  bytes Manifest = 1;
  // over "podvm-mesh SetManifest v2\\0" || uint64 BE generation of the current manifest
  //      || sha256(current manifest) || Manifest
  bytes Signature = 2;
}

message SetManifestResponse {
  bytes ManifestHash = 1;
  bytes MeshCACert = 2; // the new mesh CA, announced now, issuing after one leaf lifetime
  uint64 ManifestGeneration = 3; // of the manifest now in force: what the next update signs
}
`

export interface WireEvidence {
  Tee: string
  Raw: Uint8Array
  Vcek?: Uint8Array
  Vlek?: Uint8Array
  Chain?: Uint8Array[]
  Provider?: string
}
export interface NewMeshCertRequest {
  Nonce: Uint8Array
  PublicKey: Uint8Array
  Evidence?: WireEvidence
}
export interface NewMeshCertResponse {
  MeshCACert: Uint8Array
  CertChain: Uint8Array
  RootCACert: Uint8Array
  WorkloadSecret: Uint8Array
}
export interface ChallengeRequest {
  ClientNonce: Uint8Array
}
export interface ChallengeResponse {
  Nonce: Uint8Array
  NonceExpiresUnixMs: number
  Evidence?: WireEvidence
  RootCACert: Uint8Array
}
export interface SetManifestRequest {
  Manifest: Uint8Array
  Signature: Uint8Array
}
export interface SetManifestResponse {
  ManifestHash: Uint8Array
  MeshCACert: Uint8Array
  ManifestGeneration: number
}

let root: protobuf.Root | undefined
function types(): protobuf.Root {
  root ??= protobuf.parse(MESH_API_PROTO, { keepCase: true }).root
  return root
}

/** A message type of the mesh API, for encoding outside gRPC (tests, compatibility checks). */
export function meshApiType(name: string): protobuf.Type {
  return types().lookupType(`meshapi.${name}`)
}

function codec<T extends object>(name: string): { serialize: (m: T) => Buffer; deserialize: (b: Buffer) => T } {
  const type = meshApiType(name)
  return {
    serialize: (m) => Buffer.from(type.encode(type.fromObject(m as Record<string, unknown>)).finish()),
    // longs as numbers, bytes as Buffers, absent scalars as their defaults.
    deserialize: (b) => type.toObject(type.decode(b), { longs: Number, bytes: Buffer, defaults: true, arrays: true }) as T,
  }
}

function method<Req extends object, Res extends object>(name: string, req: string, res: string) {
  const rq = codec<Req>(req)
  const rs = codec<Res>(res)
  return {
    path: `/meshapi.MeshAPI/${name}`,
    requestStream: false as const,
    responseStream: false as const,
    requestSerialize: rq.serialize,
    requestDeserialize: rq.deserialize,
    responseSerialize: rs.serialize,
    responseDeserialize: rs.deserialize,
  }
}

export function meshApiService() {
  return {
    NewMeshCert: method<NewMeshCertRequest, NewMeshCertResponse>('NewMeshCert', 'NewMeshCertRequest', 'NewMeshCertResponse'),
    Challenge: method<ChallengeRequest, ChallengeResponse>('Challenge', 'ChallengeRequest', 'ChallengeResponse'),
    SetManifest: method<SetManifestRequest, SetManifestResponse>('SetManifest', 'SetManifestRequest', 'SetManifestResponse'),
  }
}

export type MeshApiServiceDefinition = ReturnType<typeof meshApiService>

/** Trailing-metadata key carrying our error code next to the gRPC status. */
export const REASON_METADATA_KEY = 'podvm-mesh-reason'

export type MeshApiClient = grpc.Client & {
  NewMeshCert(req: NewMeshCertRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<NewMeshCertResponse>): grpc.ClientUnaryCall
  Challenge(req: ChallengeRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<ChallengeResponse>): grpc.ClientUnaryCall
  SetManifest(req: SetManifestRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<SetManifestResponse>): grpc.ClientUnaryCall
}

export function meshApiClientConstructor(): new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => MeshApiClient {
  return grpc.makeGenericClientConstructor(meshApiService() as unknown as grpc.ServiceDefinition, 'MeshAPI') as unknown as new (
    address: string,
    creds: grpc.ChannelCredentials,
    options?: grpc.ChannelOptions,
  ) => MeshApiClient
}
