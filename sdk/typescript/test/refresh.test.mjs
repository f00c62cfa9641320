// Token refresh and gaps need their own node: tokens living 3 s, an inbox of 3 events.
import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";
import WebSocket from "ws";
import { Agent } from "../dist/index.js";
import { startNode, waitFor } from "./node.mjs";

let node;
before(async () => {
  node = await startNode({
    serveArgs: ["--token-ttl-s", "3", "--ws-token-warning", "2s", "--ws-token-grace", "1s", "--inbox-cap", "3"],
  });
});
const open = new Set();
afterEach(async () => {
  await Promise.all([...open].map((agent) => agent.close()));
  open.clear();
});
after(async () => {
  await node?.stop();
});

async function connect(creds, extra = {}) {
  const agent = new Agent({ url: node.url, clientId: creds.clientId, clientSecret: creds.clientSecret, ...extra });
  open.add(agent);
  await agent.connect();
  return agent;
}

test("token_expiring is answered with a refresh: one session outlives several token lifetimes", async () => {
  const creds = await node.createAgent("refresh");
  let tokenRequests = 0;
  const sessions = [];
  const closes = [];
  const errors = [];
  const agent = await connect(creds, {
    fetch: (url, init) => {
      tokenRequests += 1;
      return fetch(url, init);
    },
    onConnect: (w) => sessions.push(w.session_id),
    onDisconnect: (c) => closes.push(c.code),
    onError: (e) => errors.push(e),
  });
  // Without refreshes the socket would close 4001 at 3 s + 1 s grace; wait past that.
  // (Time itself is what is under test here, so the wait is on the clock.)
  const connectedAt = Date.now();
  await waitFor(() => Date.now() - connectedAt > 5_000 && tokenRequests >= 4, "5 s and three refreshes", 15_000);
  const seq = await node.emit(creds.id, "wake_up", { text: "still there?", channel: "C1", ts: "1.1" });
  const { value } = await agent.events().next();
  assert.equal(value.seq, seq);
  assert.deepEqual(closes, []);
  assert.equal(sessions.length, 1);
  assert.deepEqual(errors, []);
  await agent.close();
});

test("control: a socket that does not refresh is closed 4001 on this node", async () => {
  const creds = await node.createAgent("no-refresh");
  const response = await fetch(`${node.url}/auth/token`, {
    method: "POST",
    headers: { authorization: `Basic ${btoa(`${creds.clientId}:${creds.clientSecret}`)}` },
    body: new URLSearchParams({ grant_type: "client_credentials" }),
  });
  const { access_token: token } = await response.json();
  const socket = new WebSocket(`${node.url.replace("http", "ws")}/agents`, "nexus.v1", {
    headers: { authorization: `Bearer ${token}` },
  });
  const code = await new Promise((resolve) => socket.on("close", resolve));
  assert.equal(code, 4001);
});

test("events lost to retention surface as a gap before the events that remain", async () => {
  const creds = await node.createAgent("gap");
  for (let i = 1; i <= 6; i++) await node.emit(creds.id, "wake_up", { text: `m${i}`, channel: "C1", ts: `1.${i}` });
  const agent = await connect(creds);
  const events = agent.events();
  const first = (await events.next()).value;
  assert.equal(first.type, "gap");
  assert.equal(first.data.after_seq, 0);
  // The cap keeps the newest 3 of 6: 1–3 are gone.
  assert.deepEqual(first.data, { after_seq: 0, first_available_seq: 4 });
  const rest = [];
  for (let i = 0; i < 3; i++) rest.push((await events.next()).value);
  assert.deepEqual(rest.map((e) => [e.seq, e.data.text]), [[4, "m4"], [5, "m5"], [6, "m6"]]);
  await agent.close();
});
