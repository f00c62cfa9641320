// Wire frames ↔ typed values. Frame types come from the generated schema types;
// event payloads from `payload.ts`.
import type { ClientMsg } from "./generated/client.v1.js";
import type { EventFrame, ServerMsg } from "./generated/server.v1.js";
import type { ContextUpdate, TaskAssigned, ToolResult, WakeUp } from "./payload.js";

/** An inbox event as the agent sees it: the frame's envelope with a typed `data`. */
export type InboxEvent<T extends string, D> = Omit<EventFrame, "data"> & {
  type: T;
  data: D;
};

export type TaskAssignedEvent = InboxEvent<"task_assigned", TaskAssigned>;
export type ContextUpdateEvent = InboxEvent<"context_update", ContextUpdate>;
export type WakeUpEvent = InboxEvent<"wake_up", WakeUp>;
export type ToolResultEvent = InboxEvent<"tool_result", ToolResult>;
/** An inbox event of a type this SDK does not know (the protocol grows within v1). */
export type UnknownEvent = InboxEvent<"unknown", unknown> & { rawType: string };

export type KnownEvent = TaskAssignedEvent | ContextUpdateEvent | WakeUpEvent | ToolResultEvent;

/** A server frame after parsing: an inbox event (with `seq`) or a control frame. */
export type ParsedFrame =
  | KnownEvent
  | UnknownEvent
  | Exclude<ServerMsg, EventFrame>
  | { type: "unknown_control"; rawType: string; data: unknown };

const EVENT_TYPES = new Set(["task_assigned", "context_update", "wake_up", "tool_result"]);
const CONTROL_TYPES = new Set(["welcome", "error", "gap", "token_expiring"]);

/** The frame was not a v1 server frame (not JSON, no `type`, missing envelope fields). */
export class FrameError extends Error {
  override name = "FrameError";
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isSeq(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses one text frame from the server. Unknown fields are kept; unknown types
 * become `unknown` (with `seq`: an inbox event to ack) or `unknown_control`.
 */
export function parseServerFrame(text: string): ParsedFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FrameError("frame is not JSON");
  }
  if (!isObject(value) || typeof value.type !== "string") {
    throw new FrameError("frame is not an object with a string `type`");
  }
  const type = value.type;
  if ("seq" in value) {
    if (!isSeq(value.seq) || typeof value.id !== "string" || typeof value.ts !== "string") {
      throw new FrameError(`${type}: an inbox event needs \`id\`, \`seq\` and \`ts\``);
    }
    if (!("data" in value)) throw new FrameError(`${type}: missing \`data\``);
    if (EVENT_TYPES.has(type)) return value as unknown as KnownEvent;
    return { ...(value as unknown as EventFrame), type: "unknown", rawType: type };
  }
  if (CONTROL_TYPES.has(type)) {
    if (!isObject(value.data)) throw new FrameError(`${type}: missing \`data\``);
    return value as unknown as Exclude<ServerMsg, EventFrame>;
  }
  if (EVENT_TYPES.has(type)) throw new FrameError(`${type}: an inbox event needs a \`seq\``);
  return { type: "unknown_control", rawType: type, data: value.data };
}

/** Encodes one agent → server message; `id` is echoed as `ref` in an `error` about it. */
export function encodeClientMsg(msg: ClientMsg, id?: string): string {
  return JSON.stringify(id === undefined ? msg : { ...msg, id });
}
