// The SDK against a real node: order, acks, a socket killed mid-stream, tool calls
// reaching a fake Slack, and the triage example.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, afterEach, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Agent, AgentClosedError, AuthError, nodeSocketFactory, ToolError } from "../dist/index.js";
import { SLACK_BOT_TOKEN, startNode, waitFor } from "./node.mjs";

let node;
before(async () => {
  node = await startNode({ slack: true });
});
// Agents a failed test left open would keep reconnecting (and the process alive).
const open = new Set();
afterEach(async () => {
  await Promise.all([...open].map((agent) => agent.close()));
  open.clear();
});
after(async () => {
  await node?.stop();
});

const wake = (i) => ({ text: `message ${i}`, channel: "C0GENERAL", ts: `1764600000.${String(i).padStart(6, "0")}` });

async function connect(creds, extra = {}) {
  const agent = new Agent({ url: node.url, clientId: creds.clientId, clientSecret: creds.clientSecret, ...extra });
  open.add(agent);
  await agent.connect();
  return agent;
}

test("events arrive typed and in order, and each is acked after the loop body", async () => {
  const creds = await node.createAgent("order");
  for (let i = 1; i <= 5; i++) await node.emit(creds.id, "wake_up", wake(i));
  const agent = await connect(creds);
  assert.equal(agent.welcome.last_acked_seq, 0);

  const seen = [];
  for await (const event of agent.events()) {
    assert.equal(event.type, "wake_up");
    seen.push([event.seq, event.data.text]);
    if (event.seq === 5) {
      event.ack();
      break;
    }
  }
  assert.deepEqual(seen, [1, 2, 3, 4, 5].map((i) => [i, `message ${i}`]));
  await waitFor(async () => (await node.presence(creds.id))?.acked_seq === 5, "the server to record ack 5");
  await agent.close();

  // A restarted agent starts after its acks: nothing is delivered twice.
  const again = await connect(creds);
  assert.equal(again.welcome.last_acked_seq, 5);
  await node.emit(creds.id, "wake_up", wake(6));
  const next = await again.events().next();
  assert.equal(next.value.seq, 6);
  await again.close();
});

test("a slow loop holds at most maxBuffered events; the rest are replayed, none lost or doubled", async () => {
  const creds = await node.createAgent("backpressure");
  for (let i = 1; i <= 10; i++) await node.emit(creds.id, "wake_up", wake(i));
  const agent = await connect(creds, { maxBuffered: 3 });
  // All ten are replayed at connect; wait until the buffer is full before reading.
  await waitFor(async () => agent["queue"].length === 3, "the buffer to fill");
  const seen = [];
  let most = 0;
  for await (const event of agent.events()) {
    most = Math.max(most, agent["queue"].length);
    seen.push(event.seq);
    if (event.seq === 10) {
      event.ack();
      break;
    }
  }
  assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.ok(most <= 3, `at most 3 events held, saw ${most}`);
  await waitFor(async () => (await node.presence(creds.id))?.acked_seq === 10, "the server to record ack 10");
});

test("with autoAck off only explicitly acked events are acked; the rest come back to the next process", async () => {
  const creds = await node.createAgent("explicit-ack");
  for (let i = 1; i <= 3; i++) await node.emit(creds.id, "wake_up", wake(i));
  const agent = await connect(creds, { autoAck: false });
  const events = agent.events();
  const first = (await events.next()).value;
  const second = (await events.next()).value;
  (await events.next()).value; // seen, never acked
  second.ack(); // cumulative ack waits for the first
  assert.equal(agent.ackedSeq, 0);
  first.ack();
  assert.equal(agent.ackedSeq, 2);
  await waitFor(async () => (await node.presence(creds.id))?.acked_seq === 2, "the server to record ack 2");
  await agent.close();

  const again = await connect(creds);
  const redelivered = (await again.events().next()).value;
  assert.equal(redelivered.seq, 3);
  assert.equal(redelivered.data.text, "message 3");
  await again.close();
});

test("a socket killed mid-stream is reconnected and resumed without loss or duplicate processing", async () => {
  const creds = await node.createAgent("resume");
  for (let i = 1; i <= 6; i++) await node.emit(creds.id, "wake_up", wake(i));
  const sessions = [];
  const closes = [];
  const agent = await connect(creds, {
    backoff: { initialMs: 50, maxMs: 200 },
    onConnect: (w) => sessions.push(w.session_id),
    onDisconnect: (c) => closes.push(c.code),
  });

  const handled = [];
  for await (const event of agent.events()) {
    handled.push(event.seq);
    if (event.seq === 3) {
      // The server drops the socket (4001) while 3 is being handled and 4–6 are
      // received but not handled; 7–10 are appended while the agent is away.
      await node.api("POST", `/api/agents/${creds.id}/revoke-tokens`);
      await waitFor(() => closes.length === 1, "the socket to close");
      for (let i = 7; i <= 10; i++) await node.emit(creds.id, "wake_up", wake(i));
    }
    if (event.seq === 10) break;
  }
  assert.deepEqual(handled, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(closes, [4001]);
  assert.equal(sessions.length, 2);
  assert.ok(sessions[1].length > 0 && sessions[1] !== sessions[0]);
  // 10 was left unacked by the break: acks reach 9 on the new session.
  await waitFor(async () => (await node.presence(creds.id))?.acked_seq === 9, "acks to reach 9 on the new session");
  await agent.close();
});

test("a transport cut without a close frame is reconnected and resumed the same way", async () => {
  const creds = await node.createAgent("cut");
  for (let i = 1; i <= 4; i++) await node.emit(creds.id, "wake_up", wake(i));
  const sockets = [];
  const closes = [];
  const agent = await connect(creds, {
    backoff: { initialMs: 50, maxMs: 200 },
    socketFactory: async (url, token) => {
      const socket = await nodeSocketFactory(url, token);
      sockets.push(socket);
      return socket;
    },
    onDisconnect: (c) => closes.push(c.code),
  });
  const handled = [];
  for await (const event of agent.events()) {
    handled.push(event.seq);
    if (event.seq === 2) {
      sockets[0].terminate(); // the TCP connection just ends
      await waitFor(() => closes.length === 1, "the cut to be noticed");
      for (let i = 5; i <= 6; i++) await node.emit(creds.id, "wake_up", wake(i));
    }
    if (event.seq === 6) {
      event.ack();
      break;
    }
  }
  assert.deepEqual(handled, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(closes, [1006]);
  assert.equal(sockets.length, 2);
  await waitFor(async () => (await node.presence(creds.id))?.acked_seq === 6, "acks to reach 6");
  await agent.close();
});

test("a tool call in flight survives a reconnect and runs once", async () => {
  const creds = await node.createAgent("tool-reconnect");
  const sockets = [];
  const sessions = [];
  const agent = await connect(creds, {
    backoff: { initialMs: 50, maxMs: 200 },
    socketFactory: async (url, token) => {
      const socket = await nodeSocketFactory(url, token);
      sockets.push(socket);
      return socket;
    },
    onConnect: (w) => sessions.push(w.session_id),
  });
  const before = node.fakeSlack.requests.length;
  const release = node.fakeSlack.hold();
  const call = agent.tool("slack.post_message", { channel: "C0HELD", text: "held" }, { timeoutMs: 20_000 });
  try {
    await waitFor(() => node.fakeSlack.requests.length > before, "the post to reach Slack");
    sockets[0].terminate();
    await waitFor(() => sessions.length === 2, "a new session");
  } finally {
    release();
  }
  const result = await call;
  assert.equal(result.channel, "C0HELD");
  const posts = node.fakeSlack.requests.slice(before).filter((r) => r.path === "/chat.postMessage");
  assert.equal(posts.length, 1, "the resent request did not post twice");
  await agent.close();
});

test("a tool call reaches Slack with exactly the agent's arguments and returns Slack's answer", async () => {
  const creds = await node.createAgent("slack-tool");
  const agent = await connect(creds);
  const before = node.fakeSlack.requests.length;

  const result = await agent.tool(
    "slack.post_message",
    { channel: "C0PROJECT", text: "On it.", thread_ts: "1763802063.000100" },
    { timeoutMs: 10_000, requestId: "sdk-ts-req-1" },
  );

  const posts = node.fakeSlack.requests.slice(before);
  assert.equal(posts.length, 1);
  const [post] = posts;
  assert.equal(post.method, "POST");
  assert.equal(post.path, "/chat.postMessage");
  assert.equal(post.headers.authorization, `Bearer ${SLACK_BOT_TOKEN}`);
  assert.match(post.headers["content-type"], /^application\/json/);
  const { metadata, ...body } = post.body;
  assert.deepEqual(body, { channel: "C0PROJECT", text: "On it.", thread_ts: "1763802063.000100" });
  assert.equal(metadata.event_type, "nexus_write");
  const { ok, ...answered } = post.answer;
  assert.equal(ok, true);
  assert.deepEqual(result, answered);
  assert.equal(result.channel, "C0PROJECT");

  // The tool_result was consumed by the call and acked, not surfaced as an event.
  await waitFor(async () => (await node.presence(creds.id))?.acked_seq === 1, "the tool_result to be acked");
  await agent.close();
});

test("failing tool calls throw ToolError with the server's code", async () => {
  const creds = await node.createAgent("tool-errors");
  const agent = await connect(creds);

  await assert.rejects(agent.tool("teleport", { to: "mars" }), (e) => e instanceof ToolError && e.code === "unknown_tool");
  await assert.rejects(
    agent.tool("slack.post_message", { channel: "C0GONE", text: "hello?" }),
    (e) => e instanceof ToolError && e.code === "provider_error" && /channel_not_found/.test(e.message),
  );
  await assert.rejects(
    agent.tool("slack.post_message", { channel: "C0PROJECT" }),
    (e) => e instanceof ToolError && e.code === "invalid_args",
  );
  await agent.close();
  await assert.rejects(agent.tool("slack.post_message", { channel: "C1", text: "x" }), AgentClosedError);
});

test("status and capabilities reach the operators' presence view", async () => {
  const creds = await node.createAgent("status");
  const agent = await connect(creds);
  agent.ready(["code", "slack.post_message"]);
  agent.setStatus("working", "on 86b1x2y3z");
  const row = await waitFor(async () => {
    const p = await node.presence(creds.id);
    return p?.status === "working" && p;
  }, "status working");
  assert.equal(row.detail, "on 86b1x2y3z");
  assert.deepEqual(row.capabilities, ["code", "slack.post_message"]);
  await agent.close();
});

test("the browser transport (global WebSocket, token in the query) receives and acks", async () => {
  const creds = await node.createAgent("browser");
  await node.emit(creds.id, "wake_up", wake(1));
  const script = `
    import { Agent, browserSocketFactory } from ${JSON.stringify(new URL("../dist/index.js", import.meta.url).href)};
    const agent = await Agent.connect({ url: process.env.NEXUS_URL, clientId: process.env.ID, clientSecret: process.env.SECRET,
      socketFactory: browserSocketFactory });
    for await (const event of agent.events()) { console.log(JSON.stringify(event)); event.ack(); break; }
    await agent.close();`;
  // Node 20 has the global WebSocket behind a flag; later versions have it by default.
  const flags = typeof globalThis.WebSocket === "undefined" ? ["--experimental-websocket", "--no-warnings"] : [];
  const child = spawn(process.execPath, [...flags, "--input-type=module", "-e", script], {
    env: { ...process.env, NEXUS_URL: node.url, ID: creds.clientId, SECRET: creds.clientSecret },
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c) => (out += c));
  child.stderr.on("data", (c) => (err += c));
  const code = await new Promise((r) => child.once("exit", r));
  assert.equal(code, 0, err);
  const event = JSON.parse(out);
  assert.equal(event.type, "wake_up");
  assert.equal(event.seq, 1);
  assert.equal(event.data.text, "message 1");
  // The ack it sent stands: the next session starts after 1.
  const again = await connect(creds);
  assert.equal(again.welcome.last_acked_seq, 1);
  await again.close();
});

test("wrong credentials fail connect with AuthError", async () => {
  await assert.rejects(
    Agent.connect({ url: node.url, clientId: "nxc_nobody", clientSecret: "nxs_wrong" }),
    (e) => e instanceof AuthError && e.status === 401,
  );
});

test("examples/triage.mjs answers task_assigned with 'on it' in the task's thread and sets its status", async () => {
  const creds = await node.createAgent("triage");
  const child = spawn(process.execPath, [fileURLToPath(new URL("../examples/triage.mjs", import.meta.url))], {
    env: { ...process.env, NEXUS_URL: node.url, NEXUS_CLIENT_ID: creds.clientId, NEXUS_CLIENT_SECRET: creds.clientSecret },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (c) => (output += c));
  child.stderr.on("data", (c) => (output += c));
  try {
    await node.emit(creds.id, "task_assigned", {
      task: { id: "86b1x2y3z", name: "Fix login redirect", status: "to do", url: "https://app.clickup.com/t/86b1x2y3z", list_id: "901234567" },
      mapping: { slack_channel: "C0TRIAGE", slack_thread_ts: "1763802063.000100" },
      change: "assigned",
    });
    const post = await waitFor(
      () => node.fakeSlack.requests.find((r) => r.body?.channel === "C0TRIAGE"),
      `the example's Slack post (output: ${output})`,
    );
    assert.equal(post.body.text, "on it");
    assert.equal(post.body.thread_ts, "1763802063.000100");
    const row = await waitFor(async () => {
      const p = await node.presence(creds.id);
      return p?.acked_seq >= 2 && p;
    }, "the task and the tool result acked");
    assert.equal(row.status, "working");
    assert.match(row.detail, /86b1x2y3z/);
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
  }
});
