import { MeshError } from '../errors.js'

export type AgentCode = 'AGENT_ILLEGAL_TRANSITION' | 'AGENT_ABORTED' | 'AGENT_BAD_ARGS'

export class AgentError extends MeshError<AgentCode> {}
