// The validator must reject what Envoy would reject, or the goldens prove nothing.
import { describe, it, expect } from 'vitest'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MeshConfig, Port } from '../../../src/config/types.js'
import { deriveSpec } from '../../../src/dataplane/spec.js'
import { renderBootstrap } from '../../../src/dataplane/envoy/bootstrap.js'
import { loadedProtoFiles, validateAny, validateMessage } from './schema.js'

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap'
const CONFIG: MeshConfig = {
  ingress: { enabled: true, rules: [] },
  egress: [{ name: 'web', listen: { address: '127.137.0.3', port: 8081 as Port }, remote: { host: 'web-svc', port: 443 as Port } }],
  transparentEgress: { enabled: true, allowPlaintext: [] },
  admin: { port: 15020 as Port, exposed: false },
}
const fresh = (): any => renderBootstrap(deriveSpec(CONFIG), { sdsDir: '/sds', adminPort: 15000 })
const ingressTls = (b: any): any => b.static_resources.listeners[0].filter_chains.at(-1).transport_socket.typed_config
const ingressTcpProxy = (b: any): any => b.static_resources.listeners[0].filter_chains.at(-1).filters[0].typed_config
const TLS_PATH = '$.static_resources.listeners[0].filter_chains[5].transport_socket.typed_config'
const TCP_PATH = '$.static_resources.listeners[0].filter_chains[5].filters[0].typed_config'

const GOLDEN = join(import.meta.dirname, 'golden')

describe('golden files on disk', () => {
  const files = readdirSync(GOLDEN).filter((f) => f.endsWith('.json'))
  it('exist for every case', () => {
    expect(files.length).toBeGreaterThanOrEqual(8)
  })
  it.each(files)('%s is valid Envoy v3 JSON', (file) => {
    const doc = JSON.parse(readFileSync(join(GOLDEN, file), 'utf8'))
    const type = file.startsWith('sds-') ? 'envoy.service.discovery.v3.DiscoveryResponse' : BOOTSTRAP
    expect(validateMessage(type, doc)).toEqual([])
  })
})

describe('schema validator', () => {
  it('accepts the rendered bootstrap', () => {
    expect(validateMessage(BOOTSTRAP, fresh())).toEqual([])
  })

  it.each<[string, (b: any) => void, { path: string; reason: string }]>([
    ['misspelled top-level field', (b) => (b.static_resource = b.static_resources), { path: '$.static_resource', reason: 'UNKNOWN_FIELD' }],
    [
      'misspelled field in a listener',
      (b) => (b.static_resources.listeners[0].transparnt = true),
      { path: '$.static_resources.listeners[0].transparnt', reason: 'UNKNOWN_FIELD' },
    ],
    [
      'misspelled field inside a typed_config (Any content is validated)',
      (b) => (ingressTls(b).require_client_certificat = true),
      { path: `${TLS_PATH}.require_client_certificat`, reason: 'UNKNOWN_FIELD' },
    ],
    [
      'misspelled field two Anys deep is still found (tcp_proxy)',
      (b) => (ingressTcpProxy(b).idle_timout = '1s'),
      { path: `${TCP_PATH}.idle_timout`, reason: 'UNKNOWN_FIELD' },
    ],
    [
      'wrong @type (no such message)',
      (b) => (ingressTls(b)['@type'] = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContex'),
      { path: `${TLS_PATH}["@type"]`, reason: 'UNKNOWN_TYPE_URL' },
    ],
    [
      'wrong @type (real message, wrong fields for it)',
      (b) => (ingressTls(b)['@type'] = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'),
      { path: `${TLS_PATH}.require_client_certificate`, reason: 'UNKNOWN_FIELD' },
    ],
    [
      'Any without @type',
      (b) => delete ingressTcpProxy(b)['@type'],
      { path: TCP_PATH, reason: 'MISSING_TYPE_URL' },
    ],
    [
      'bad enum value',
      (b) => (b.static_resources.clusters[0].type = 'ORIGINAL_DESTINATION'),
      { path: '$.static_resources.clusters[0].type', reason: 'UNKNOWN_ENUM' },
    ],
    [
      'bad enum value inside an Any',
      (b) => (ingressTls(b).common_tls_context.tls_params.tls_maximum_protocol_version = 'TLSv1_4'),
      { path: `${TLS_PATH}.common_tls_context.tls_params.tls_maximum_protocol_version`, reason: 'UNKNOWN_ENUM' },
    ],
    [
      'bad enum value in a field newer than the vendored protos (tcp_proxy upstream_connect_mode)',
      (b) => (ingressTcpProxy(b).upstream_connect_mode = 'ON_HANDSHAKE'),
      { path: `${TCP_PATH}.upstream_connect_mode`, reason: 'UNKNOWN_ENUM' },
    ],
    [
      'undefined enum number',
      (b) => (b.static_resources.clusters[0].lb_policy = 99),
      { path: '$.static_resources.clusters[0].lb_policy', reason: 'UNKNOWN_ENUM' },
    ],
    [
      'Duration as a number',
      (b) => (b.static_resources.clusters[0].connect_timeout = 10),
      { path: '$.static_resources.clusters[0].connect_timeout', reason: 'BAD_VALUE' },
    ],
    [
      'Duration without unit',
      (b) => (ingressTcpProxy(b).idle_timeout = '10'),
      { path: `${TCP_PATH}.idle_timeout`, reason: 'BAD_VALUE' },
    ],
    [
      'string where a message is expected',
      (b) => (b.admin.address = '127.0.0.1:15000'),
      { path: '$.admin.address', reason: 'WRONG_JSON_TYPE' },
    ],
    [
      'uint32 out of range',
      (b) => (b.admin.address.socket_address.port_value = 2 ** 32),
      { path: '$.admin.address.socket_address.port_value', reason: 'BAD_VALUE' },
    ],
    [
      'PGV: port above 65535',
      (b) => (b.admin.address.socket_address.port_value = 70000),
      { path: '$.admin.address.socket_address.port_value', reason: 'PGV' },
    ],
    [
      'PGV: int64 gt 0 inside an Any',
      (b) => (b.overload_manager.resource_monitors[0].typed_config.max_active_downstream_connections = 0),
      { path: '$.overload_manager.resource_monitors[0].typed_config.max_active_downstream_connections', reason: 'PGV' },
    ],
    [
      'BoolValue wrapper given a string',
      (b) => (b.static_resources.listeners[0].transparent = 'true'),
      { path: '$.static_resources.listeners[0].transparent', reason: 'WRONG_JSON_TYPE' },
    ],
    [
      'oneof with two members',
      (b) => (b.admin.address.pipe = { path: '/tmp/admin.sock' }),
      { path: '$.admin.address.pipe', reason: 'ONEOF_CONFLICT' },
    ],
    [
      'PGV: required oneof left empty',
      (b) => (b.admin.address = {}),
      { path: '$.admin.address', reason: 'PGV' },
    ],
    [
      'same field as snake_case and lowerCamel',
      (b) => (b.staticResources = b.static_resources),
      { path: '$.staticResources', reason: 'DUPLICATE_FIELD' },
    ],
    [
      'deprecated field',
      (b) => (ingressTls(b).common_tls_context.validation_context_sds_secret_config.sds_config.path = '/sds/ca.json'),
      { path: `${TLS_PATH}.common_tls_context.validation_context_sds_secret_config.sds_config.path`, reason: 'DEPRECATED_FIELD' },
    ],
  ])('rejects %s, naming the path', (_name, mutate, issue) => {
    const b = fresh()
    mutate(b)
    expect(validateMessage(BOOTSTRAP, b)).toContainEqual(expect.objectContaining(issue))
  })

  it('loads protos lazily: the extensions a config references, not the whole API', () => {
    validateMessage(BOOTSTRAP, fresh())
    const files = loadedProtoFiles()
    expect(files).toContain('envoy/config/bootstrap/v3/bootstrap.proto')
    expect(files).toContain('envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto')
    expect(files).toContain('envoy/extensions/filters/listener/original_dst/v3/original_dst.proto')
    expect(files).toContain('envoy/extensions/transport_sockets/tls/v3/tls.proto')
    expect(files).not.toContain('envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto')
    expect(files).not.toContain('envoy/extensions/filters/network/redis_proxy/v3/redis_proxy.proto')
  })

  it('accepts lowerCamel json names as Envoy does', () => {
    const b = fresh()
    b.staticResources = b.static_resources
    delete b.static_resources
    b.staticResources.clusters[0].connectTimeout = '1.5s'
    delete b.staticResources.clusters[0].connect_timeout
    expect(validateMessage(BOOTSTRAP, b)).toEqual([])
  })

  it('accepts 64-bit integers as strings and rejects non-numeric strings', () => {
    const opt = (v: unknown) => ({ level: 1, name: 36, int_value: v, state: 'STATE_PREBIND' })
    expect(validateMessage('envoy.config.core.v3.SocketOption', opt('1293'))).toEqual([])
    expect(validateMessage('envoy.config.core.v3.SocketOption', opt('0x50d'))).toContainEqual(
      expect.objectContaining({ path: '$.int_value', reason: 'WRONG_JSON_TYPE' }),
    )
  })

  it('validates a Secret given as an Any', () => {
    const secret = {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
      name: 'mesh-ca',
      validation_context: { trusted_ca: { inline_strin: 'x' } },
    }
    expect(validateAny(secret)).toEqual([
      expect.objectContaining({ path: '$.validation_context.trusted_ca.inline_strin', reason: 'UNKNOWN_FIELD' }),
      // …and then the DataSource has none of its required oneof members.
      expect.objectContaining({ path: '$.validation_context.trusted_ca', reason: 'PGV' }),
    ])
  })

  it('handles well-known types wrapped in Any (special JSON under "value")', () => {
    expect(validateAny({ '@type': 'type.googleapis.com/google.protobuf.Duration', value: '3s' })).toEqual([])
    expect(validateAny({ '@type': 'type.googleapis.com/google.protobuf.Duration', value: 3 })).toContainEqual(
      expect.objectContaining({ path: '$.value', reason: 'BAD_VALUE' }),
    )
    expect(validateAny({ '@type': 'type.googleapis.com/google.protobuf.Struct', value: { any: ['thing'] } })).toEqual([])
  })
})
