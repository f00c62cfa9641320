// The typed `data` of each inbox event, mirroring `proto-events/src/payload.rs`.
//
// The JSON Schema leaves an event's `data` open (`EventFrame.data` is any JSON, so
// an older client still reads newer events); these shapes are what the v1 server
// sends today. Optional fields may be absent; unknown fields may appear.

/** A ClickUp task as the agent needs to see it. */
export interface TaskRef {
  id: string;
  name: string;
  status: string;
  url: string;
  list_id: string;
}

/** Where the task is mirrored in Slack. */
export interface MappingRef {
  slack_channel: string;
  /** The task's thread, once one exists. */
  slack_thread_ts?: string;
}

/** `task_assigned`: a task was created for, or assigned to, this agent. */
export interface TaskAssigned {
  task: TaskRef;
  mapping: MappingRef;
  /** What happened, e.g. `created`, `assigned`. */
  change: string;
}

/** A put.io transfer as its completion callback describes it. */
export interface PutioTransfer {
  id: number;
  name?: string;
  status?: string;
  file_id?: number;
  size?: number;
  save_parent_id?: number;
  source?: string;
}

/** `context_update`: something changed around a task the agent works on. */
export interface ContextUpdate {
  task_id?: string;
  /** e.g. `clickup`, `slack`, `putio`. */
  source: string;
  text: string;
  author?: string;
  channel?: string;
  /** The source's own timestamp (a Slack `ts`). */
  ts?: string;
  /** ClickUp: `status`, `comment`, `assigned`, `updated`, `deleted`. */
  change?: string;
  task?: TaskRef;
  transfer?: PutioTransfer;
}

/** `wake_up`: someone addressed the agent in Slack outside a task thread. */
export interface WakeUp {
  text: string;
  channel: string;
  /** The Slack message to reply to. */
  ts: string;
  thread_ts?: string;
  author?: string;
  /** `mention` or `alias:NAME`. */
  reason?: string;
}

/** Why a tool call failed: `invalid_args`, `unknown_tool`, `timeout`, `provider_error`, … */
export interface ToolErrorData {
  code: string;
  message: string;
}

/** `tool_result`: the answer to a `tool_request` with the same `request_id`. */
export interface ToolResult {
  request_id: string;
  ok: boolean;
  result?: unknown;
  error?: ToolErrorData;
}
