// @nexus-hub/agent — a Nexus agent in TypeScript, speaking agent protocol v1.
export { Agent } from "./agent.js";
export type { AgentEvent, AgentOptions, GapEvent, ToolCallOptions, Tools } from "./options.js";
export { encodeClientMsg, FrameError, parseServerFrame } from "./codec.js";
export type {
  ContextUpdateEvent,
  InboxEvent,
  KnownEvent,
  ParsedFrame,
  TaskAssignedEvent,
  ToolResultEvent,
  UnknownEvent,
  WakeUpEvent,
} from "./codec.js";
export { AgentClosedError, AuthError, NexusError, ToolError, ToolTimeoutError } from "./errors.js";
export type * from "./payload.js";
export type * as server from "./generated/server.v1.js";
export type * as client from "./generated/client.v1.js";
export type { ClientMsg } from "./generated/client.v1.js";
export type { ServerMsg, Welcome } from "./generated/server.v1.js";
export { browserSocketFactory, defaultSocketFactory, nodeSocketFactory, PROTOCOL } from "./transport.js";
export type { SocketFactory, SocketLike } from "./transport.js";
