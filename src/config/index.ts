// Public surface of the config component; other components import only from here.

export {
  DEFAULT_ADMIN_PORT,
  MESH_PORTS,
  MESH_SOCKET_MARK,
  TPROXY_MARK,
  TPROXY_ROUTE_TABLE,
  type AdminConfig,
  type EgressRule,
  type IngressConfig,
  type IngressRule,
  type MeshConfig,
  type PlaintextDestination,
  type Port,
  type TransparentEgressConfig,
} from './types.js'
export { ConfigError, formatIssue, isConfigError, type ConfigCode, type ConfigIssue, type ConfigReason } from './errors.js'
export {
  ENV_NAMES,
  fileFormatOf,
  meshConfigFromEnv,
  meshConfigFromFile,
  meshConfigFromStrings,
  meshConfigFromText,
  parseEgress,
  parseIngress,
  type SourcedValue,
  type StringInputs,
} from './parse.js'
export { MeshConfigFileSchema, type FileFormat, type MeshConfigFile } from './file-schema.js'
export { CONFIG_OPTIONS, CONFIG_USAGE, configFromArgs, type ConfigFromArgs, type ExtraValues, type OptionsSpec } from './args.js'
export { toPort } from './validate.js'
export { parseBoolean } from './strings.js'
export {
  DIGEST_FIELD_BYTES,
  INITDATA_ALGORITHMS,
  INITDATA_ANNOTATION,
  INITDATA_HEADER_BYTES,
  INITDATA_MAGIC,
  INITDATA_VERSION,
  MAX_INITDATA_COMPRESSED_BYTES,
  MAX_INITDATA_TOML_BYTES,
  checkInitdataDigest,
  digestForField,
  encodeInitdataAnnotation,
  encodeInitdataBlock,
  initdataDigest,
  initdataFromAnnotation,
  initdataBlockBodyLength,
  initdataFromBlock,
  parseInitdataToml,
  renderInitdataToml,
  type DigestField,
  type InitdataAlgorithm,
  type InitdataDocument,
} from './initdata.js'
export { InitdataError, type InitdataCode } from './initdata-errors.js'
export { MESH_INITDATA_KEY, meshSectionFromInitdata, parseMeshSection, renderMeshSection, type CoordinatorPin, type MeshSection, type WorkloadIdentity } from './initdata-mesh.js'
