/** Every error the SDK throws is a `NexusError`. */
export class NexusError extends Error {
  override name = "NexusError";
}

/** `POST /auth/token` refused the client (wrong id/secret, disabled agent, suspended tenant). */
export class AuthError extends NexusError {
  override name = "AuthError";
  constructor(
    message: string,
    /** The HTTP status of the token endpoint's answer. */
    readonly status: number,
  ) {
    super(message);
  }
}

/** A tool call answered `ok: false`, or refused by the server before it ran. */
export class ToolError extends NexusError {
  override name = "ToolError";
  constructor(
    /** Stable code: `invalid_args`, `unknown_tool`, `target_not_allowed`, `timeout`, `provider_error`, … */
    readonly code: string,
    message: string,
    readonly requestId: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/** No `tool_result` arrived within the call's deadline (its `timeoutMs` plus a margin). */
export class ToolTimeoutError extends ToolError {
  override name = "ToolTimeoutError";
  constructor(requestId: string, timeoutMs: number) {
    super("client_timeout", `no tool_result within ${timeoutMs} ms`, requestId);
  }
}

/**
 * The agent stopped: `close()` was called (`code` 1000), or the server closed the
 * session with a code that forbids reconnecting (4003 agent disabled, 4010
 * superseded, 4011 tenant suspended).
 */
export class AgentClosedError extends NexusError {
  override name = "AgentClosedError";
  constructor(
    readonly code: number | null,
    readonly reason: string,
  ) {
    super(`agent closed${code === null ? "" : ` (${code})`}: ${reason}`);
  }
}
