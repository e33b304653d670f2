// The config flags every config-consuming command shares (`check`, `render nft`,
// `render envoy`, `run`). A command passes its own parseArgs options and gets their
// values back next to the config, so there is one flag parser per invocation.

import { parseArgs, type ParseArgsConfig } from 'node:util'
import { configInvalid, type ConfigIssue } from './errors.js'
import { meshConfigFromEnv, meshConfigFromFile, meshConfigFromStrings, type StringInputs } from './parse.js'
import type { MeshConfig } from './types.js'

/** parseArgs options spec, as node:util takes it. */
export type OptionsSpec = NonNullable<ParseArgsConfig['options']>

export const CONFIG_OPTIONS = {
  ingress: { type: 'string' },
  egress: { type: 'string' },
  'admin-port': { type: 'string' },
  'transparent-egress': { type: 'boolean' },
  'allow-plaintext': { type: 'string', multiple: true },
  'egress-mesh-ca-only': { type: 'string' },
  file: { type: 'string' },
} as const satisfies OptionsSpec

/** One line per flag, for a command's --help. */
export const CONFIG_USAGE = `config (flags, or --file, or else the environment):
  --ingress S             ingress exceptions: name#port#true|false joined by ##, or DISABLED
  --egress S              egress: name#127.x.y.z:port#host:port joined by ##
  --admin-port N          admin/health port on all addresses, reached through the mesh (mTLS)
                          unless an ingress entry names it (admin#N#true: plaintext)
  --transparent-egress    capture all outbound TCP into mTLS
  --allow-plaintext LIST  CIDR[,CIDR:port,[v6CIDR]:port...] left plaintext (repeatable)
  --egress-mesh-ca-only N[,N...]  these egress entries accept any mesh member (no name check)
  --file F                a .json or .toml mesh config file
  environment: CONTRAST_INGRESS_PROXY_CONFIG, CONTRAST_EGRESS_PROXY_CONFIG, CONTRAST_ADMIN_PORT
  (or EDG_*), PODVM_MESH_TRANSPARENT_EGRESS, PODVM_MESH_EGRESS_PLAINTEXT, PODVM_MESH_EGRESS_MESH_CA_ONLY
`

type Parsed<O extends OptionsSpec> = ReturnType<
  typeof parseArgs<{ options: O; strict: true; allowPositionals: true }>
>

/** Values of a command's own options, typed from its spec. */
export type ExtraValues<O extends OptionsSpec> = Parsed<O>['values']

export interface ConfigFromArgs<O extends OptionsSpec> {
  readonly config: MeshConfig
  /** Where the config came from. */
  readonly from: 'flags' | 'file' | 'env'
  readonly values: ExtraValues<O>
  readonly positionals: string[]
}

const FLAG_NAMES = Object.keys(CONFIG_OPTIONS) as (keyof typeof CONFIG_OPTIONS)[]

/**
 * Reads the shared config flags from `argv` plus the command's own `options`.
 * Config flags and --file are mutually exclusive; with neither, the config comes from
 * `env`. With flags, env is not consulted at all, so a test or a render is reproducible
 * from its command line alone.
 */
export function configFromArgs<const O extends OptionsSpec = Record<never, never>>(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  spec: { readonly options?: O; readonly allowPositionals?: boolean } = {},
): ConfigFromArgs<O> {
  const extra = (spec.options ?? {}) as O
  const clash = Object.keys(extra).filter((k) => k in CONFIG_OPTIONS)
  if (clash.length > 0) {
    throw configInvalid(
      clash.map((k) => ({ source: 'options', entry: k, reason: 'INVALID_ARGUMENT', message: `--${k} is a shared config option` })),
      { code: 'CONFIG_OPTION_CLASH' },
    )
  }
  let parsed: { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] }
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...extra, ...CONFIG_OPTIONS },
      strict: true,
      allowPositionals: spec.allowPositionals ?? false,
    }) as typeof parsed
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    throw configInvalid([{ source: 'argv', reason: 'INVALID_ARGUMENT', message }], { cause: err })
  }
  const v = parsed.values
  const extraValues = Object.fromEntries(Object.entries(v).filter(([k]) => !(k in CONFIG_OPTIONS))) as ExtraValues<O>
  const given = FLAG_NAMES.filter((k) => v[k] !== undefined && k !== 'file')
  const done = (config: MeshConfig, from: 'flags' | 'file' | 'env'): ConfigFromArgs<O> => ({
    config,
    from,
    values: extraValues,
    positionals: parsed.positionals,
  })

  const file = v.file as string | undefined
  if (file !== undefined) {
    if (given.length > 0) {
      const issues: ConfigIssue[] = given.map((k) => ({
        source: 'argv',
        entry: `--${k}`,
        reason: 'FLAGS_WITH_FILE',
        message: `--${k} cannot be combined with --file; put it in the file`,
      }))
      throw configInvalid(issues)
    }
    return done(meshConfigFromFile(file), 'file')
  }
  if (given.length === 0) return done(meshConfigFromEnv(env), 'env')

  const str = (k: 'ingress' | 'egress' | 'admin-port' | 'egress-mesh-ca-only') =>
    typeof v[k] === 'string' ? { value: v[k] as string, source: `--${k}` } : undefined
  const allow = v['allow-plaintext'] as string[] | undefined
  const inputs: StringInputs = {
    ingress: str('ingress'),
    egress: str('egress'),
    adminPort: str('admin-port'),
    egressMeshCaOnly: str('egress-mesh-ca-only'),
    transparentEgress: v['transparent-egress'] === true ? { value: true, source: '--transparent-egress' } : undefined,
    allowPlaintext: allow === undefined ? undefined : { value: allow.join(','), source: '--allow-plaintext' },
  }
  return done(meshConfigFromStrings(inputs), 'flags')
}
