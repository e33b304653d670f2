// Which Envoy the tests run. Kept out of support.ts: it pulls in the data-plane module.

import { findEnvoy } from '../src/agent/dataplane-select.js'

export type EnvoyForTests = { readonly path: string; readonly skip?: undefined } | { readonly path?: undefined; readonly skip: string }

/**
 * The Envoy executable (ENVOY_BIN, else `envoy` on PATH), or why there is none. Under
 * CI=true a missing Envoy throws: Envoy is the primary data plane, scripts/setup.sh
 * installs it, and its tests must fail rather than skip.
 */
export function envoyForTests(env: NodeJS.ProcessEnv = process.env): EnvoyForTests {
  const path = findEnvoy(env)
  if (path !== undefined) return { path }
  const reason = 'no envoy binary (set ENVOY_BIN or put envoy on PATH; scripts/setup.sh installs it)'
  if (env['CI'] === 'true') throw new Error(`Envoy is required under CI=true: ${reason}`)
  return { skip: reason }
}
