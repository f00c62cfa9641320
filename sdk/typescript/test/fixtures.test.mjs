// Every example frame of protocol v1 parses (server → agent) or encodes (agent →
// server) with the SDK, and type-checks against the types generated from the schema.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { encodeClientMsg, parseServerFrame } from "../dist/index.js";

const pkg = fileURLToPath(new URL("../", import.meta.url));
const fixturesDir = fileURLToPath(new URL("../../../proto-events/fixtures/v1/", import.meta.url));
const SERVER = ["welcome", "task_assigned", "context_update", "wake_up", "tool_result", "error", "gap", "token_expiring"];
const CLIENT = ["heartbeat", "agent_ready", "status_update", "tool_request", "ack", "resume", "refresh"];

async function fixtures() {
  const names = (await readdir(fixturesDir)).filter((f) => f.endsWith(".json")).sort();
  return Promise.all(names.map(async (name) => [name, JSON.parse(await readFile(join(fixturesDir, name), "utf8"))]));
}

test("every fixture is a frame the SDK knows, in one direction", async () => {
  const all = await fixtures();
  assert.ok(all.length >= 15, `expected the 15 v1 fixtures, found ${all.length}`);
  for (const [name, frame] of all) {
    const server = SERVER.includes(frame.type);
    const client = CLIENT.includes(frame.type);
    assert.ok(server !== client, `${name}: type ${frame.type} is neither (or both) server and client`);
    if (server) {
      const parsed = parseServerFrame(JSON.stringify(frame));
      assert.equal(parsed.type, frame.type, name);
      assert.deepEqual(JSON.parse(JSON.stringify(parsed)), frame, `${name} round-trips`);
    } else {
      assert.deepEqual(JSON.parse(encodeClientMsg(frame)), frame, `${name} encodes`);
    }
  }
});

test("every fixture type-checks against the generated ServerMsg/ClientMsg and the payload types", async () => {
  const all = await fixtures();
  const lines = [
    'import type { ServerMsg } from "../src/generated/server.v1.js";',
    'import type { ClientMsg } from "../src/generated/client.v1.js";',
    'import type { KnownEvent } from "../src/codec.js";',
  ];
  all.forEach(([name, frame], i) => {
    const literal = JSON.stringify(frame);
    if (SERVER.includes(frame.type)) {
      lines.push(`// ${name}`, `export const s${i}: ServerMsg = ${literal};`);
      if ("seq" in frame) lines.push(`export const e${i}: KnownEvent = ${literal};`);
    } else {
      lines.push(`// ${name}`, `export const c${i}: ClientMsg = ${literal};`);
    }
  });
  // A frame with a wrong field must fail, or the check proves nothing.
  lines.push('// @ts-expect-error seq is a number', 'export const bad: ClientMsg = { type: "ack", data: { seq: "1" } };');
  const dir = await mkdtemp(join(pkg, ".fixture-check-"));
  try {
    await writeFile(join(dir, "fixtures.ts"), lines.join("\n") + "\n");
    await writeFile(join(dir, "tsconfig.json"), JSON.stringify({
      extends: "../tsconfig.json",
      compilerOptions: { noEmit: true, rootDir: "..", noUnusedLocals: false },
      include: ["fixtures.ts"],
    }));
    const tsc = join(pkg, "node_modules", "typescript", "bin", "tsc");
    await promisify(execFile)(process.execPath, [tsc, "-p", join(dir, "tsconfig.json")]).catch((e) => {
      assert.fail(`fixtures do not type-check:\n${e.stdout}${e.stderr}`);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
