// netfilter: the nftables ruleset and policy routing of the pod. Render is pure and
// golden-tested; apply is thin and runs through a Runner.
export { renderBaseline, renderFinal, renderTeardown, formatRouteCommand, NFT_TABLE, NFT_FAMILY, type Ruleset, type RouteCommand } from './render.js'
export { applyRuleset, removeAll, execRunner, netnsRunner, type Runner, type RunResult, type RunOptions } from './apply.js'
export { NetfilterError, type NetfilterCode } from './errors.js'
