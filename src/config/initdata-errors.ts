// Errors of the initdata reader. A bad mesh section inside a valid document is a
// ConfigError (CONFIG_INVALID, issues sourced `initdata:<key>:<field>`), like any
// other mesh config; these codes are about the envelope and the digest.

import { MeshError } from '../errors.js'

export type InitdataCode =
  /** Block device: fewer bytes than the header or the length it announces. */
  | 'INITDATA_TRUNCATED'
  /** Block device: the first 8 bytes are not `initdata`. */
  | 'INITDATA_BAD_MAGIC'
  /** Compressed or decompressed size above the bound. */
  | 'INITDATA_TOO_LARGE'
  /** The body is not gzip, or gzip data is corrupt. */
  | 'INITDATA_BAD_GZIP'
  /** The annotation value is not strict standard base64. */
  | 'INITDATA_BAD_BASE64'
  /** The document is not UTF-8 or not TOML. */
  | 'INITDATA_BAD_TOML'
  /** `version`, `algorithm` or `[data]` missing or wrong; details.field names it. */
  | 'INITDATA_BAD_FIELD'
  /** The document has no mesh section under `[data]`. */
  | 'INITDATA_NO_MESH_SECTION'
  /** The evidence field is neither 32 (SNP HOST_DATA) nor 48 (TDX MRCONFIGID) bytes. */
  | 'INITDATA_BAD_EVIDENCE_FIELD'
  /** The TEE reports a different initdata digest than the document we were given. */
  | 'INITDATA_DIGEST_MISMATCH'

export class InitdataError extends MeshError<InitdataCode> {}
