// Data planes take TLS material that pki has checked (readTlsDir, watchTlsDir) as it
// is, with what the check found. Anything else (a test, another caller) goes through
// pki's one check here, and a refusal is DATAPLANE_CREDENTIALS naming the field.

import { isMeshError } from '../errors.js'
import { checkTlsMaterial, checkedTlsInfo, TLS_FILES, type TlsMaterial, type TlsMaterialInfo } from '../pki/index.js'
import { DataPlaneError } from './errors.js'

const FIELD_OF_FILE: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(TLS_FILES).map(([field, file]) => [file, field]))

export function requireCheckedMaterial(material: TlsMaterial): TlsMaterialInfo {
  const checked = checkedTlsInfo(material)
  if (checked !== undefined) return checked
  try {
    return checkTlsMaterial(material)
  } catch (err) {
    if (!isMeshError(err)) throw err
    const field = FIELD_OF_FILE[String(err.details['file'])]
    throw new DataPlaneError('DATAPLANE_CREDENTIALS', `TLS material rejected: ${err.message}`, { reason: err.message, field }, { cause: err })
  }
}
