// The demo component: a lab of pods as network namespaces, used by `podvm-mesh demo`
// and by the end-to-end tests.
export { MeshLab, DIST, lineProcess } from './lab.js'
export type { Capture, Daemon, EchoApp, LabPki, LabPkiOptions, LineProcess } from './lab.js'
export { cleanupStale, createTopology, netnsExec, netnsUnavailableReason, run, waitFor } from './topology.js'
export type { ExecOptions, ExecResult, NetnsNode, Topology, TopologyOptions } from './topology.js'
export { A_EGRESS, A_EGRESS_B, A_EGRESS_DB, APP_PORTS, B_INGRESS, HOSTS, IMPOSTOR_PORT, NODES, sansFor } from './scenario.js'
export type { ProbeOptions, ProbeResult } from './probe.js'
export type { EchoEvent, EchoServerOptions } from './echo-server.js'
export { HOOK_NAME, HOOK_TIMEOUT_S, buildLabRootfs, containersUnavailableReason, labConfig, runContainer, startContainer, writeBundle, writeLabHook } from './container.js'
export type { BundleOptions, OciMount } from './container.js'
