import { MeshError } from '../errors.js'

export type AgentCode = 'AGENT_ILLEGAL_TRANSITION' | 'AGENT_ABORTED' | 'AGENT_BAD_ARGS' | 'AGENT_ATTEMPT_FAILED'

export class AgentError extends MeshError<AgentCode> {}
