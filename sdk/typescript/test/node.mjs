// A real Nexus node for the tests: fresh SQLite database in a temp dir, a tenant,
// an operator key, `nexus serve` on a free port. Agents are made over the operator API.
import { spawn, execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const repo = resolve(fileURLToPath(new URL("../../../", import.meta.url)));

export const NEXUS_BIN =
  process.env.NEXUS_BIN ??
  join(process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, "target"), "debug", "nexus");

export const SLACK_BOT_TOKEN = "xoxb-sdk-ts-test";

/** Polls `check` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor(check, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts a node. `serveArgs` are extra `nexus serve` flags; `slack: true` starts a
 * fake Slack Web API first and registers a Slack source whose bot token it expects.
 */
export async function startNode({ serveArgs = [], slack = false } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "nexus-sdk-ts-"));
  const env = {
    ...process.env,
    DATABASE_URL: `sqlite://${join(dir, "n.db")}`,
    NEXUS_JWT_SECRET: "sdk-ts-test-secret-0123456789abcdefghij",
    NEXUS_LOG_FORMAT: "json",
    RUST_LOG: "info",
  };
  const cli = async (...args) => {
    const { stdout } = await run(NEXUS_BIN, args, { env });
    return stdout.trim().split("\n").filter(Boolean).map((line) => JSON.parse(line));
  };
  await cli("migrate");
  const [tenant] = await cli("tenant", "create", "--name", "sdk-ts");
  const [{ key: operatorKey }] = await cli("operator-key", "create", "--name", "k", "--scopes", "read,write,admin");

  let fakeSlack = null;
  if (slack) {
    fakeSlack = await startFakeSlack();
    await cli("source", "add", "--tenant", tenant.id, "--kind", "slack", "--team-id", "T0SDKTS",
      "--signing-secret", "sdk-ts-signing", "--bot-token", SLACK_BOT_TOKEN, "--bot-user", "U0NEXUSBOT");
    await cli("tenant", "set", tenant.id, "--tool-scope", "any");
    serveArgs = [...serveArgs, "--slack-api-url", fakeSlack.url];
  }

  const child = spawn(NEXUS_BIN, ["serve", "--listen", "127.0.0.1:0", ...serveArgs], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const logs = [];
  const addr = await new Promise((resolveAddr, reject) => {
    let buffered = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        logs.push(line);
        try {
          const entry = JSON.parse(line);
          if (entry.message === "nexus listening") resolveAddr(entry.addr);
        } catch {}
      }
    });
    child.on("exit", (code) => reject(new Error(`nexus serve exited ${code}:\n${logs.join("\n")}`)));
  });
  const url = `http://${addr}`;
  await waitFor(async () => (await fetch(`${url}/ready`).catch(() => null))?.status === 200, "GET /ready");

  const api = async (method, path, body) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${operatorKey}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };

  return {
    url,
    tenantId: tenant.id,
    fakeSlack,
    logs,
    api,
    /** A new agent of the tenant: `{id, clientId, clientSecret}`. */
    async createAgent(name) {
      const { agents: [agent] } = await api("POST", `/api/tenants/${tenant.id}/agents`, { name });
      return { id: agent.id, clientId: agent.client_id, clientSecret: agent.client_secret };
    },
    /** Appends an event to the agent's inbox; resolves with its seq. */
    async emit(agentId, type, data) {
      return (await api("POST", `/api/agents/${agentId}/events`, { type, data })).seq;
    },
    /** The agent's presence row (`acked_seq`, `status`, …), or undefined when offline. */
    async presence(agentId) {
      const { agents } = await api("GET", `/api/presence?tenant=${tenant.id}`);
      return agents.find((a) => a.agent_id === agentId);
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      await fakeSlack?.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A Slack Web API that records every request and answers `chat.postMessage` like Slack. */
async function startFakeSlack() {
  const requests = [];
  let n = 0;
  let gate = null;
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      const recorded = { method: req.method, path: req.url, headers: req.headers, body: body ? JSON.parse(body) : null };
      requests.push(recorded);
      if (gate) await gate.promise;
      res.setHeader("content-type", "application/json");
      const answer = (value) => {
        recorded.answer = value;
        res.end(JSON.stringify(value));
      };
      if (req.headers.authorization !== `Bearer ${SLACK_BOT_TOKEN}`) {
        return answer({ ok: false, error: "invalid_auth" });
      }
      if (req.method === "POST" && req.url === "/chat.postMessage") {
        if (recorded.body.channel === "C0GONE") {
          return answer({ ok: false, error: "channel_not_found" });
        }
        n += 1;
        return answer({ ok: true, channel: recorded.body.channel, ts: `1764600000.${String(n).padStart(6, "0")}` });
      }
      if (req.method === "GET" && /^\/conversations\.(history|replies)/.test(req.url)) {
        return answer({ ok: true, messages: [] });
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ ok: false, error: "unknown_method" }));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /** Holds every answer until `release()`. */
    hold() {
      let release;
      const promise = new Promise((r) => (release = r));
      gate = { promise };
      return () => {
        gate = null;
        release();
      };
    },
    close: () => new Promise((r) => server.close(r)),
  };
}
