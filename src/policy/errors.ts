import { MeshError } from '../errors.js'

export type PolicyCode =
  /** The manifest is not YAML; details.document, line. */
  | 'POLICY_MANIFEST_SYNTAX'
  /** A resource's mesh annotations (or its pod spec) are invalid; details.resource, details.issues. */
  | 'POLICY_RESOURCE_INVALID'
  /** A resource's existing cc_init_data annotation cannot be read; details.resource, cause. */
  | 'POLICY_INITDATA_INVALID'
  /** The policy to merge into is not a Kata agent policy (`package agent_policy`). */
  | 'POLICY_NOT_AGENT_POLICY'
  /** The mesh rules file is missing or malformed. */
  | 'POLICY_RULES_INVALID'
  /** The coordinator manifest to update is not JSON, or would not be valid with the new policies; details.source. */
  | 'POLICY_COORDINATOR_MANIFEST'

export class PolicyError extends MeshError<PolicyCode> {}
