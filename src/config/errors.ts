// Every configuration problem is collected as an issue; a ConfigError carries all
// issues of one input, so an operator fixes an annotation once, not once per error.

import { isMeshError, MeshError } from '../errors.js'

export type ConfigCode =
  /** The input (env, flags, file content) is wrong; details.issues says where and why. */
  | 'CONFIG_INVALID'
  /** The config file could not be read; details.issues has one FILE_UNREADABLE issue. */
  | 'CONFIG_FILE_UNREADABLE'
  /** A command asked configFromArgs for an option that the shared config options already own. */
  | 'CONFIG_OPTION_CLASH'

/** Stable reason codes; tests and operators match on these, not on messages. */
export type ConfigReason =
  | 'PORT_NOT_NUMERIC'
  | 'PORT_OUT_OF_RANGE'
  | 'PORT_RESERVED'
  | 'DUPLICATE_INGRESS_PORT'
  | 'ADMIN_PORT_RESERVED'
  | 'LISTEN_NOT_LOCAL'
  | 'LISTEN_ADDRESS_INVALID'
  | 'LISTEN_PORT_RESERVED'
  | 'DUPLICATE_LISTEN'
  | 'DUPLICATE_EGRESS_NAME'
  | 'UNKNOWN_EGRESS_NAME'
  | 'MISSING_PORT'
  | 'INVALID_HOST'
  | 'INVALID_NAME'
  | 'WRONG_FIELD_COUNT'
  | 'EMPTY_ENTRY'
  | 'EMPTY_VALUE'
  | 'INVALID_BOOLEAN'
  | 'ENV_CONFLICT'
  | 'INVALID_CIDR'
  | 'CIDR_HOST_BITS_SET'
  | 'ALLOW_LIST_WITHOUT_OPT_IN'
  | 'INGRESS_DISABLED_WITH_PORTS'
  | 'FILE_SYNTAX'
  | 'FILE_FORMAT_UNKNOWN'
  | 'FILE_UNREADABLE'
  | 'UNKNOWN_KEY'
  | 'MISSING_FIELD'
  | 'WRONG_TYPE'
  | 'INVALID_VALUE'
  | 'INVALID_ARGUMENT'
  | 'FLAGS_WITH_FILE'

export interface ConfigIssue {
  /** Where: an env var (`CONTRAST_INGRESS_PROXY_CONFIG`), a flag (`--egress`), `file:<path>`, or `argv`. */
  readonly source: string
  /** The raw entry text (env/flags) or field value (file), when there is one. */
  readonly entry?: string
  /** Position of the entry in its list. */
  readonly index?: number
  readonly reason: ConfigReason
  readonly message: string
}

export class ConfigError extends MeshError<ConfigCode> {
  declare readonly details: { readonly issues: readonly ConfigIssue[] } & Readonly<Record<string, unknown>>

  get issues(): readonly ConfigIssue[] {
    return this.details.issues
  }
}

/** By the shared error brand and code, so it holds across two copies of this module. */
export function isConfigError(err: unknown): err is ConfigError {
  return isMeshError(err) && err.code.startsWith('CONFIG_') && Array.isArray(err.details['issues'])
}

/** One line per issue: `source [index] "entry": REASON: message`. */
export function formatIssue(issue: ConfigIssue): string {
  const at = issue.index !== undefined ? ` [${issue.index}]` : ''
  const entry = issue.entry !== undefined ? ` ${JSON.stringify(issue.entry)}` : ''
  return `${issue.source}${at}${entry}: ${issue.reason}: ${issue.message}`
}

/** `file:ingress.ports[1].port` → `file:ingress`; other sources are their own group. */
function groupOf(source: string): string {
  return source.startsWith('file:') ? (source.split(/[.[]/)[0] as string) : source
}

/**
 * Issues of one source together, in entry order: syntax and semantic checks run in
 * separate passes, and an operator reads the result entry by entry.
 */
function ordered(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const rank = new Map<string, number>()
  for (const i of issues) if (!rank.has(groupOf(i.source))) rank.set(groupOf(i.source), rank.size)
  return issues
    .map((issue, pos) => ({ issue, pos }))
    .sort(
      (a, b) =>
        (rank.get(groupOf(a.issue.source)) as number) - (rank.get(groupOf(b.issue.source)) as number) ||
        (a.issue.index ?? -1) - (b.issue.index ?? -1) ||
        a.pos - b.pos,
    )
    .map((x) => x.issue)
}

export function configInvalid(
  issues: readonly ConfigIssue[],
  options: { code?: ConfigCode; cause?: unknown; file?: string } = {},
): ConfigError {
  const frozen = Object.freeze(ordered(issues).map((i) => Object.freeze({ ...i })))
  const what = options.file !== undefined ? `mesh configuration file ${options.file}` : 'mesh configuration'
  const head = `invalid ${what} (${issues.length} problem${issues.length === 1 ? '' : 's'})`
  const message = [head, ...frozen.map((i) => `  ${formatIssue(i)}`)].join('\n')
  return new ConfigError(options.code ?? 'CONFIG_INVALID', message, { issues: frozen, file: options.file }, options.cause === undefined ? undefined : { cause: options.cause })
}
