// What an agent author passes in and gets out: options, events, the tool table.
import type { ErrorData, Gap, Welcome } from "./generated/server.v1.js";
import type { KnownEvent, UnknownEvent } from "./codec.js";
import type { SocketFactory } from "./transport.js";

/** The tools a v1 node runs, with their arguments and results (README "Connecting ClickUp and Slack"). */
export interface Tools {
  "slack.post_message": {
    args: { channel: string; text: string; thread_ts?: string };
    result: { channel: string; ts: string };
  };
  "clickup.create_comment": {
    args: { task_id: string; text: string };
    result: { task_id: string; comment_id: string };
  };
  "clickup.update_status": {
    args: { task_id: string; status: string };
    result: { task_id: string; status: string };
  };
  "task.reply": {
    args: { task_id: string; text: string };
    result: { task_id: string; slack: { channel: string; ts: string }; clickup: { comment_id: string } };
  };
}

/** A `gap` frame: events after `after_seq` and before `first_available_seq` were lost to retention. */
export interface GapEvent {
  type: "gap";
  data: Gap;
}

/** What `events()` yields. `ack()` marks it handled (the loop does so itself unless `autoAck: false`). */
export type AgentEvent = (KnownEvent | UnknownEvent | GapEvent) & { ack(): void };

export interface AgentOptions {
  /** The node's base URL, e.g. `https://nexus.example.com` (`/auth/token` and `/agents` are under it). */
  url: string;
  clientId: string;
  clientSecret: string;
  /** Replay point for the first session; default: the server's record of your last ack. */
  afterSeq?: number;
  /** Ack each event when the loop asks for the next one (default `true`). */
  autoAck?: boolean;
  /**
   * Most events held for the loop (default 1000). Beyond it the agent stops taking
   * them (they stay in the server's inbox) and, once the loop has caught up by half,
   * asks the server to replay them (`resume`): memory stays bounded, nothing is lost.
   */
  maxBuffered?: number;
  /** Reconnect backoff: doubling from `initialMs` up to `maxMs`, with jitter (defaults 500 ms, 30 s). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Called on every `welcome` (first connect and each reconnect). */
  onConnect?: (welcome: Welcome) => void;
  /** Called when a session ends; the agent reconnects unless the code forbids it. */
  onDisconnect?: (close: { code: number; reason: string }) => void;
  /** Server `error` frames not tied to a tool call, and failures of background work (refresh). */
  onError?: (error: ErrorData | Error) => void;
  /** Overrides how sockets are opened (tests, proxies). */
  socketFactory?: SocketFactory;
  fetch?: typeof fetch;
}

export interface ToolCallOptions {
  /** The server gives up after this (default 30 000, at most 300 000); the call fails with code `timeout`. */
  timeoutMs?: number;
  /** Idempotency key; default a random UUID. Reusing one never runs the tool twice. */
  requestId?: string;
}
