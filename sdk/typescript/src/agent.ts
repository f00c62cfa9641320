// One agent: a token, one socket at a time, the events it receives and the
// acks, refreshes and tool calls it sends. Reconnects on its own until `close()`.
import type { ClientMsg, StatusUpdate } from "./generated/client.v1.js";
import type { Welcome } from "./generated/server.v1.js";
import { encodeClientMsg, FrameError, parseServerFrame } from "./codec.js";
import type { KnownEvent, UnknownEvent } from "./codec.js";
import { AgentClosedError, AuthError, NexusError, ToolError, ToolTimeoutError } from "./errors.js";
import type { AgentEvent, AgentOptions, GapEvent, ToolCallOptions, Tools } from "./options.js";
import { defaultSocketFactory, isOpen } from "./transport.js";
import type { SocketFactory, SocketLike } from "./transport.js";

/** Close codes after which reconnecting is wrong (protocol README §6). */
const FATAL_CLOSE = new Set([4003, 4010, 4011]);
/** How long past its `timeoutMs` a tool call waits for the server's own `timeout` answer. */
const TOOL_DEADLINE_MARGIN_MS = 5_000;
/** Settled request ids remembered, so a re-answered request is not surfaced as news. */
const SETTLED_MEMORY = 1_024;

interface PendingTool {
  frame: ClientMsg;
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Adds `ack` as a non-enumerable method, so the event still serializes as its frame. */
function withAck(event: KnownEvent | UnknownEvent | GapEvent, ack: () => void): AgentEvent {
  return Object.defineProperty(event, "ack", { value: ack, enumerable: false }) as AgentEvent;
}

export class Agent {
  private readonly opts: AgentOptions;
  private readonly socketFactory: SocketFactory;
  private readonly fetchFn: typeof fetch;

  private socket: SocketLike | null = null;
  private welcomeFrame: Welcome | null = null;
  private running: Promise<void> | null = null;
  private stopped: AgentClosedError | null = null;
  private wakeRetry: (() => void) | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private lastSocketError = "";
  private sessionWelcomed = false;
  private firstWelcome: { resolve: () => void; reject: (e: Error) => void } | null = null;

  /** Highest seq received in this process: anything at or below it is a redelivery. */
  private highestSeen: number | null;
  /** Received events in delivery order, until they and all before them are done. */
  private inFlight: { seq: number; done: boolean }[] = [];
  /** Everything up to here is handled (ours), and `ackSent` is what the server was told. */
  private handledUpTo = 0;
  private ackSent = 0;

  private queue: AgentEvent[] = [];
  /** Events were left on the server since the queue was full; replay them once it drains. */
  private overflowed = false;
  private takers: (() => void)[] = [];
  private current: AgentEvent | null = null;

  private pendingTools = new Map<string, PendingTool>();
  private settledTools = new Set<string>();
  private readyFrame: ClientMsg | null = null;
  private statusFrame: ClientMsg | null = null;

  constructor(opts: AgentOptions) {
    this.opts = opts;
    this.socketFactory = opts.socketFactory ?? defaultSocketFactory;
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.highestSeen = opts.afterSeq ?? null;
  }

  /** `new Agent(opts)` then `connect()`. */
  static async connect(opts: AgentOptions): Promise<Agent> {
    const agent = new Agent(opts);
    await agent.connect();
    return agent;
  }

  /**
   * Gets a token and opens the socket; resolves on the first `welcome`. Fails if
   * that first attempt fails (bad credentials, unreachable node); later drops
   * are reconnected with backoff and resumed after the last event received.
   */
  connect(): Promise<void> {
    if (this.stopped) return Promise.reject(this.stopped);
    if (this.running) {
      return this.welcomeFrame ? Promise.resolve() : this.waitFirstWelcome();
    }
    const first = this.waitFirstWelcome();
    this.running = this.run();
    return first;
  }

  /** The last `welcome`, or `null` before the first. */
  get welcome(): Welcome | null {
    return this.welcomeFrame;
  }

  /** Whether a session is live (a `welcome` arrived on the current socket). */
  get connected(): boolean {
    return this.welcomeFrame !== null && isOpen(this.socket);
  }

  /** The highest seq handled and acked (or queued to be acked on reconnect). */
  get ackedSeq(): number {
    return this.handledUpTo;
  }

  /**
   * The agent's events, in order, each once per process. With `autoAck` each is
   * acked when the loop body finishes (the loop asks for the next one); leaving
   * the loop (`break`, `throw`) does not ack the current event: the next
   * `events()` loop yields it again. Ends after `close()`; throws
   * `AgentClosedError` when the server ended the agent (4003, 4010, 4011) or
   * a reconnect was refused its token. One loop at a time per agent.
   */
  events(): AsyncIterableIterator<AgentEvent> {
    const iterator: AsyncIterableIterator<AgentEvent> = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        const previous = this.current;
        this.current = null;
        if (previous && this.opts.autoAck !== false) previous.ack();
        const event = await this.take();
        if (event === null) return { done: true, value: undefined };
        this.current = event;
        return { done: false, value: event };
      },
      return: async () => {
        if (this.current) this.queue.unshift(this.current);
        this.current = null;
        return { done: true, value: undefined };
      },
    };
    return iterator;
  }

  /**
   * Runs a tool on the server and resolves with its `result`; rejects with
   * `ToolError` (`code` from the server) or `ToolTimeoutError`. Survives
   * reconnects: the request is resent with the same id, which never runs twice.
   */
  tool<K extends keyof Tools>(tool: K, args: Tools[K]["args"], options?: ToolCallOptions): Promise<Tools[K]["result"]>;
  tool(tool: string, args?: Record<string, unknown>, options?: ToolCallOptions): Promise<unknown>;
  tool(tool: string, args: Record<string, unknown> = {}, options: ToolCallOptions = {}): Promise<unknown> {
    if (this.stopped) return Promise.reject(this.stopped);
    const requestId = options.requestId ?? globalThis.crypto.randomUUID();
    const timeoutMs = options.timeoutMs ?? 30_000;
    const frame: ClientMsg = {
      type: "tool_request",
      data: { request_id: requestId, tool, args, timeout_ms: timeoutMs },
    };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingTools.delete(requestId);
        reject(new ToolTimeoutError(requestId, timeoutMs));
      }, timeoutMs + TOOL_DEADLINE_MARGIN_MS);
      this.pendingTools.set(requestId, { frame, resolve, reject, timer });
      this.send(frame, requestId);
    });
  }

  /** Announces capabilities (`agent_ready`); repeated after every reconnect. */
  ready(capabilities: string[] = []): void {
    this.readyFrame = { type: "agent_ready", data: { capabilities } };
    this.send(this.readyFrame);
  }

  /** Sets the status operators see (`status_update`); repeated after every reconnect. */
  setStatus(status: string, detail?: string): void {
    const data: StatusUpdate = detail === undefined ? { status } : { status, detail };
    this.statusFrame = { type: "status_update", data };
    this.send(this.statusFrame);
  }

  /**
   * Stops: no more reconnects, pending tool calls fail with `AgentClosedError`,
   * `events()` ends (events received but not yet yielded are left unacked, for
   * the next process), the socket closes with 1000.
   */
  async close(): Promise<void> {
    this.stop(new AgentClosedError(1000, "closed by the agent"));
    const socket = this.socket;
    if (socket && socket.readyState < 2) socket.close(1000, "normal");
    await this.running?.catch(() => {});
  }

  // ---- sessions ---------------------------------------------------------

  private waitFirstWelcome(): Promise<void> {
    return new Promise((resolve, reject) => {
      const previous = this.firstWelcome;
      this.firstWelcome = {
        resolve: () => (previous?.resolve(), resolve()),
        reject: (e) => (previous?.reject(e), reject(e)),
      };
    });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let close: { code: number; reason: string };
      try {
        close = await this.session();
      } catch (error) {
        if (error instanceof AuthError || this.firstWelcome) {
          this.stop(error instanceof NexusError ? error : new NexusError(String(error)));
          return;
        }
        this.opts.onError?.(error as Error);
        close = { code: 0, reason: String(error) };
      }
      this.welcomeFrame = null;
      if (this.stopped) return;
      this.opts.onDisconnect?.(close);
      if (FATAL_CLOSE.has(close.code)) {
        this.stop(new AgentClosedError(close.code, close.reason));
        return;
      }
      if (this.firstWelcome) {
        const why = close.reason || this.lastSocketError;
        this.stop(new NexusError(`could not connect: closed with ${close.code} ${why}`.trim()));
        return;
      }
      // Backoff grows over attempts that never reached `welcome` (refused upgrades,
      // 4029, a node that is down) and starts again after a session that did.
      failures = this.sessionWelcomed ? 0 : failures + 1;
      await this.backoff(failures);
    }
  }

  /** One session: token, socket, frames until it closes. */
  private async session(): Promise<{ code: number; reason: string }> {
    this.sessionWelcomed = false;
    const token = await this.fetchToken();
    if (this.stopped) return { code: 1000, reason: "closed by the agent" };
    const url = new URL("agents", this.opts.url.endsWith("/") ? this.opts.url : `${this.opts.url}/`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.highestSeen !== null) url.searchParams.set("after_seq", String(this.highestSeen));
    const socket = await this.socketFactory(url.toString(), token);
    this.socket = socket;
    return new Promise((resolve) => {
      socket.onmessage = (ev) => this.onFrame(String(ev.data));
      socket.onerror = (ev) => {
        // a close follows; keep why, for the message if this was the first attempt
        this.lastSocketError = String(ev?.message ?? ev?.error?.message ?? "socket error");
      };
      socket.onclose = (ev) => {
        this.stopHeartbeat();
        if (this.socket === socket) this.socket = null;
        resolve({ code: ev.code, reason: ev.reason });
      };
      if (this.stopped) socket.close(1000, "normal");
    });
  }

  private async backoff(failures: number): Promise<void> {
    const initial = this.opts.backoff?.initialMs ?? 500;
    const max = this.opts.backoff?.maxMs ?? 30_000;
    const cap = Math.min(max, initial * 2 ** Math.min(Math.max(failures - 1, 0), 20));
    const delay = cap / 2 + (Math.random() * cap) / 2;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delay);
      this.wakeRetry = () => (clearTimeout(timer), resolve());
    });
    this.wakeRetry = null;
  }

  private async fetchToken(): Promise<string> {
    const url = new URL("auth/token", this.opts.url.endsWith("/") ? this.opts.url : `${this.opts.url}/`);
    const basic = btoa(`${this.opts.clientId}:${this.opts.clientSecret}`);
    const response = await this.fetchFn(url, {
      method: "POST",
      headers: {
        authorization: `Basic ${basic}`,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: "grant_type=client_credentials",
    });
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (response.status === 401 || response.status === 400) {
      const why = [body.error, body.error_description].filter(Boolean).join(": ");
      throw new AuthError(`token refused (${response.status}) ${why}`.trim(), response.status);
    }
    if (!response.ok || typeof body.access_token !== "string") {
      throw new NexusError(`token endpoint answered ${response.status}`);
    }
    return body.access_token;
  }

  private stop(reason: NexusError): void {
    if (this.stopped) return;
    this.stopped = reason instanceof AgentClosedError ? reason : new AgentClosedError(null, reason.message);
    this.stopHeartbeat();
    this.wakeRetry?.();
    this.firstWelcome?.reject(reason);
    this.firstWelcome = null;
    for (const [, pending] of this.pendingTools) {
      clearTimeout(pending.timer);
      pending.reject(this.stopped);
    }
    this.pendingTools.clear();
    for (const wake of this.takers.splice(0)) wake();
  }

  // ---- frames -----------------------------------------------------------

  private onFrame(text: string): void {
    let frame;
    try {
      frame = parseServerFrame(text);
    } catch (error) {
      if (error instanceof FrameError) return this.opts.onError?.(error);
      throw error;
    }
    switch (frame.type) {
      case "welcome":
        return this.onWelcome(frame.data);
      case "token_expiring":
        this.refresh().catch((error) => this.opts.onError?.(error as Error));
        return;
      case "gap":
        this.enqueue(withAck({ type: "gap", data: frame.data }, () => {}));
        return;
      case "error": {
        const pending = frame.data.ref ? this.pendingTools.get(frame.data.ref) : undefined;
        if (pending && frame.data.ref) {
          this.settleTool(frame.data.ref);
          pending.reject(new ToolError(frame.data.code, frame.data.message, frame.data.ref));
        } else {
          this.opts.onError?.(frame.data);
        }
        return;
      }
      case "unknown_control":
        return;
      default:
        return this.onEvent(frame);
    }
  }

  private onWelcome(welcome: Welcome): void {
    this.welcomeFrame = welcome;
    this.sessionWelcomed = true;
    this.startHeartbeat(welcome.heartbeat_interval_s);
    if (this.readyFrame) this.send(this.readyFrame);
    if (this.statusFrame) this.send(this.statusFrame);
    this.ackSent = Math.max(this.ackSent, welcome.last_acked_seq);
    if (this.handledUpTo > this.ackSent) this.sendAck();
    for (const [requestId, pending] of this.pendingTools) this.send(pending.frame, requestId);
    this.opts.onConnect?.(welcome);
    this.firstWelcome?.resolve();
    this.firstWelcome = null;
  }

  private onEvent(event: KnownEvent | UnknownEvent): void {
    if (this.highestSeen !== null && event.seq <= this.highestSeen) return; // redelivered
    if (this.overflowed || this.queue.length >= this.maxBuffered()) {
      // Left in the server's inbox (not counted as seen), replayed once the loop has
      // caught up. A result an awaited tool() call waits for is handed over now all
      // the same; its replay is then acked as settled.
      this.overflowed = true;
      if (event.type === "tool_result") this.answerTool(event.data, () => {});
      return;
    }
    this.highestSeen = event.seq;
    this.inFlight.push({ seq: event.seq, done: false });
    const ack = () => this.markDone(event.seq);
    if (event.type === "tool_result" && this.answerTool(event.data, ack)) return;
    this.enqueue(withAck({ ...event }, ack));
  }

  /** Settles the tool() call `result` answers; false when no call of this agent asked. */
  private answerTool(result: Extract<KnownEvent, { type: "tool_result" }>["data"], ack: () => void): boolean {
    const requestId = result.request_id;
    const pending = this.pendingTools.get(requestId);
    if (!pending && !this.settledTools.has(requestId)) return false;
    ack();
    if (!pending) return true;
    this.settleTool(requestId);
    if (result.ok) pending.resolve(result.result);
    else {
      const error = result.error ?? { code: "unknown", message: "failed" };
      pending.reject(new ToolError(error.code, error.message, requestId));
    }
    return true;
  }

  private maxBuffered(): number {
    return Math.max(1, this.opts.maxBuffered ?? 1000);
  }

  private settleTool(requestId: string): void {
    const pending = this.pendingTools.get(requestId);
    if (pending) clearTimeout(pending.timer);
    this.pendingTools.delete(requestId);
    this.settledTools.add(requestId);
    if (this.settledTools.size > SETTLED_MEMORY) {
      const oldest = this.settledTools.values().next().value;
      if (oldest !== undefined) this.settledTools.delete(oldest);
    }
  }

  private async refresh(): Promise<void> {
    const token = await this.fetchToken();
    this.send({ type: "refresh", data: { token } });
  }

  // ---- acks ---------------------------------------------------------------

  /** Marks `seq` handled; acks the longest handled prefix of what was received. */
  private markDone(seq: number): void {
    const entry = this.inFlight.find((e) => e.seq === seq);
    if (!entry || entry.done) return;
    entry.done = true;
    while (this.inFlight[0]?.done) this.handledUpTo = this.inFlight.shift()!.seq;
    if (this.handledUpTo > this.ackSent) this.sendAck();
  }

  private sendAck(): void {
    if (this.send({ type: "ack", data: { seq: this.handledUpTo } })) this.ackSent = this.handledUpTo;
  }

  // ---- plumbing -----------------------------------------------------------

  private enqueue(event: AgentEvent): void {
    this.queue.push(event);
    this.takers.shift()?.();
  }

  private async take(): Promise<AgentEvent | null> {
    for (;;) {
      // Once stopped, buffered events are dropped: their acks could not be sent,
      // so the next process receives them again.
      if (this.stopped) {
        if (this.stopped.code === 1000) return null;
        throw this.stopped;
      }
      const event = this.queue.shift();
      if (this.overflowed && this.queue.length <= this.maxBuffered() / 2) {
        // Caught up by half: the server replays what was left with it. If the socket
        // is down, the reconnect resumes from the same point.
        this.overflowed = false;
        this.send({ type: "resume", data: { after_seq: this.highestSeen ?? this.ackSent } });
      }
      if (event) return event;
      await new Promise<void>((resolve) => this.takers.push(resolve));
    }
  }

  /** Sends on the live socket; `false` when there is none (the frame is replayed on reconnect where that matters). */
  private send(msg: ClientMsg, id?: string): boolean {
    if (!isOpen(this.socket)) return false;
    this.socket.send(encodeClientMsg(msg, id));
    return true;
  }

  private startHeartbeat(intervalS: number): void {
    this.stopHeartbeat();
    const every = Math.max(1_000, (intervalS * 1_000) / 2);
    this.heartbeat = setInterval(() => this.send({ type: "heartbeat" }), every);
    (this.heartbeat as { unref?: () => void }).unref?.();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }
}
