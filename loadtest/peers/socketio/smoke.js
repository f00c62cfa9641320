'use strict';

// Self-contained smoke test: starts server.js on an ephemeral port, speaks the raw
// Engine.IO v4 / Socket.IO v5 protocol over a plain WebSocket (exactly what the Rust
// load tool does), and checks auth, welcome, emits, ping/pong, replacement and stats.
//
//   node smoke.js            # exit 0 on success, 1 with a message on failure
//   SMOKE_QUIET=1 node smoke.js   # no wire transcript

const { spawn } = require('node:child_process');
const path = require('node:path');
const crypto = require('node:crypto');
const jwt = require('jsonwebtoken');
const WebSocket = require('ws');

const HARD_TIMEOUT_MS = 20000;
const PING_INTERVAL_MS = 800; // shortened so a ping is observable; defaults are 30000/10000
const PING_TIMEOUT_MS = 1000;
const SECRET = crypto.randomBytes(32).toString('hex');
const QUIET = !!process.env.SMOKE_QUIET;
const T0 = Date.now();

let server;
const sockets = [];

function log(line) {
  if (!QUIET) process.stdout.write(`[${String(Date.now() - T0).padStart(5)}ms] ${line}\n`);
}

function fail(msg) {
  process.stderr.write(`SMOKE FAIL: ${msg}\n`);
  cleanup();
  process.exit(1);
}

function cleanup() {
  for (const s of sockets) try { s.terminate(); } catch { /* ignore */ }
  if (server && server.exitCode === null) try { server.kill('SIGKILL'); } catch { /* ignore */ }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const hardTimer = setTimeout(() => fail(`hard timeout of ${HARD_TIMEOUT_MS} ms exceeded`), HARD_TIMEOUT_MS);
hardTimer.unref();

// ------------------------------------------------------------ helpers ---

function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(process.execPath, ['--expose-gc', path.join(__dirname, 'server.js')], {
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        JWT_SECRET: SECRET,
        REDIS_URL: '',
        PING_INTERVAL_MS: String(PING_INTERVAL_MS),
        PING_TIMEOUT_MS: String(PING_TIMEOUT_MS),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    server.stderr.on('data', (d) => process.stderr.write(`[server] ${d}`));
    server.on('exit', (code, sig) => reject(new Error(`server exited early (code ${code}, signal ${sig})`)));
    server.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const first = buf.slice(0, nl);
      try {
        const { listening } = JSON.parse(first);
        assert(/^127\.0\.0\.1:\d+$/.test(listening), `bad listening line ${first}`);
        log(`server stdout: ${first}`);
        resolve(listening);
      } catch (e) {
        reject(new Error(`unexpected first stdout line: ${JSON.stringify(first)} (${e.message})`));
      }
    });
  });
}

/** Raw WebSocket client that records every text frame into a queue. */
class RawClient {
  constructor(name, url) {
    this.name = name;
    this.queue = [];
    this.waiters = [];
    this.closed = false;
    this.ws = new WebSocket(url);
    sockets.push(this.ws);
    this.ws.on('message', (data, isBinary) => {
      const s = isBinary ? `<binary ${data.length}B>` : data.toString('utf8');
      log(`${this.name} << ${s}`);
      this.queue.push(s);
      this._drain();
    });
    this.ws.on('close', (code) => {
      log(`${this.name} -- websocket closed (${code})`);
      this.closed = true;
      this._drain();
    });
    this.ws.on('error', (e) => log(`${this.name} -- websocket error ${e.message}`));
  }

  opened() {
    return new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    });
  }

  send(s) {
    log(`${this.name} >> ${s}`);
    this.ws.send(s);
  }

  _drain() {
    for (const w of [...this.waiters]) {
      const i = this.queue.findIndex(w.pred);
      if (i >= 0) {
        const [frame] = this.queue.splice(i, 1);
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(frame);
      } else if (this.closed) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.reject(new Error(`${this.name}: socket closed while waiting for ${w.what}`));
      }
    }
  }

  /** Wait for (and consume) the first frame matching pred. */
  next(what, pred = () => true, timeoutMs = 3000) {
    return new Promise((resolve, reject) => {
      const w = { what, pred, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.name}: timed out waiting for ${what}; unconsumed frames: ${JSON.stringify(this.queue)}`));
      }, timeoutMs);
      this.waiters.push(w);
      this._drain();
    });
  }

  waitClosed(timeoutMs) {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: not closed within ${timeoutMs} ms`)), timeoutMs);
      this.ws.once('close', () => { clearTimeout(t); resolve(); });
    });
  }
}

/** Parse a Socket.IO-over-Engine.IO text frame like `42/agents,["event",{...}]`. */
function parseSio(frame, nsp = '/agents') {
  const prefix = `4${frame[1]}${nsp},`;
  if (frame[0] !== '4' || !frame.startsWith(prefix)) return null;
  const rest = frame.slice(prefix.length);
  return { type: Number(frame[1]), payload: rest === '' ? undefined : JSON.parse(rest) };
}

const isEvent = (name) => (f) => {
  const p = parseSio(f);
  return !!p && p.type === 2 && Array.isArray(p.payload) && p.payload[0] === name;
};

async function http(base, method, urlPath, body) {
  const res = await fetch(`http://${base}${urlPath}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const json = await res.json();
  log(`HTTP ${method} ${urlPath} -> ${res.status} ${JSON.stringify(json)}`);
  return { status: res.status, json };
}

const mint = (sub, tenant, secret = SECRET, opts = {}) =>
  jwt.sign({ sub, tenant_id: tenant }, secret, { algorithm: 'HS256', expiresIn: '1h', ...opts });

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function checkEventPayload(frame, type, data) {
  const [name, evt] = parseSio(frame).payload;
  assert(name === 'event', `expected "event", got ${name}`);
  assert(evt.type === type, `event.type ${evt.type} != ${type}`);
  assert(UUID_RE.test(evt.id), `event.id not a uuid: ${evt.id}`);
  assert(!Number.isNaN(Date.parse(evt.ts)) && evt.ts.endsWith('Z'), `event.ts not ISO: ${evt.ts}`);
  assert(JSON.stringify(evt.data) === JSON.stringify(data), `event.data mismatch: ${JSON.stringify(evt.data)}`);
  return evt;
}

/** Open a raw socket and complete the namespace handshake. Returns {c, sid, welcome}. */
async function connectAgent(name, wsBase, token, { viaQuery = false } = {}) {
  const url = viaQuery ? `${wsBase}&token=${encodeURIComponent(token)}` : wsBase;
  const c = new RawClient(name, url);
  await c.opened();
  const open = await c.next('engine.io open packet', (f) => f[0] === '0');
  const hs = JSON.parse(open.slice(1));
  assert(typeof hs.sid === 'string' && hs.sid.length > 0, 'open packet: sid');
  assert(Array.isArray(hs.upgrades) && hs.upgrades.length === 0, 'open packet: upgrades must be []');
  assert(hs.pingInterval === PING_INTERVAL_MS, `open packet: pingInterval ${hs.pingInterval}`);
  assert(hs.pingTimeout === PING_TIMEOUT_MS, `open packet: pingTimeout ${hs.pingTimeout}`);
  assert(hs.maxPayload === 65536, `open packet: maxPayload ${hs.maxPayload}`);
  c.send(viaQuery ? '40/agents,' : `40/agents,${JSON.stringify({ token })}`);
  const conn = await c.next('namespace CONNECT/CONNECT_ERROR', (f) => f.startsWith('40/agents,') || f.startsWith('44/agents,'));
  return { c, hs, conn };
}

// --------------------------------------------------------------- main ---

async function main() {
  const base = await startServer();
  const wsBase = `ws://${base}/socket.io/?EIO=4&transport=websocket`;
  const TENANT = 'tenant-1';

  // 1. Good token via handshake auth: open -> 40 -> welcome.
  const a = await connectAgent('A', wsBase, mint('agent-1', TENANT));
  const connA = parseSio(a.conn);
  assert(connA.type === 0 && typeof connA.payload.sid === 'string', `A: expected 40/agents,{"sid":..}, got ${a.conn}`);
  const welcome = parseSio(await a.c.next('welcome', isEvent('welcome'))).payload[1];
  assert(welcome.session_id === connA.payload.sid, 'welcome.session_id must equal the namespace sid');
  assert(welcome.agent_id === 'agent-1' && welcome.tenant_id === TENANT, `welcome payload ${JSON.stringify(welcome)}`);
  a.c.send('42/agents,["heartbeat",{}]');
  a.c.send('42/agents,["ack",{"seq":1}]');

  // 2. Bad tokens are rejected with CONNECT_ERROR {"message":"unauthorized"}.
  for (const [label, token] of [['garbage', 'not-a-jwt'], ['wrong-secret', mint('agent-x', TENANT, 'nope')],
    ['expired', mint('agent-x', TENANT, SECRET, { expiresIn: -10 })], ['missing', undefined]]) {
    const b = await connectAgent(`BAD(${label})`, wsBase, token);
    const p = parseSio(b.conn);
    assert(p && p.type === 4 && p.payload.message === 'unauthorized', `bad token (${label}) not rejected: ${b.conn}`);
    b.c.ws.close();
  }

  // 3. Token via query param (?token=...) also works; second agent, same tenant.
  const c = await connectAgent('C', wsBase, mint('agent-2', TENANT), { viaQuery: true });
  assert(parseSio(c.conn).type === 0, `C: query-token connect failed: ${c.conn}`);
  await c.c.next('welcome', isEvent('welcome'));

  // 4. Emit to one agent.
  const d1 = { task_id: 't-1', priority: 3 };
  let r = await http(base, 'POST', '/emit/agent/agent-1', { type: 'task_assigned', data: d1 });
  assert(r.status === 202 && r.json.delivered === true, 'emit/agent delivered');
  checkEventPayload(await a.c.next('event (agent)', isEvent('event')), 'task_assigned', d1);
  r = await http(base, 'POST', '/emit/agent/nobody', { type: 'task_assigned', data: {} });
  assert(r.status === 202 && r.json.delivered === false, 'emit/agent to unknown agent must be delivered:false');

  // 5. Emit to the tenant room: both A and C receive it.
  const d2 = { announcement: 'hello tenant' };
  r = await http(base, 'POST', `/emit/tenant/${TENANT}`, { type: 'broadcast', data: d2 });
  assert(r.status === 202 && r.json.agents === 2, `emit/tenant agents=${r.json.agents}`);
  const evA = checkEventPayload(await a.c.next('event (tenant) on A', isEvent('event')), 'broadcast', d2);
  const evC = checkEventPayload(await c.c.next('event (tenant) on C', isEvent('event')), 'broadcast', d2);
  assert(evA.id === evC.id, 'tenant broadcast must carry the same event id to all members');
  r = await http(base, 'POST', '/emit/tenant/empty-tenant', { type: 'x' });
  assert(r.status === 202 && r.json.agents === 0, 'emit/tenant empty room');
  r = await http(base, 'POST', '/emit/agent/agent-1', '{not json');
  assert(r.status === 400, 'invalid JSON must be 400');

  // 6. Ping/pong: A answers "2" with "3" and keeps getting pings; C never answers and is dropped.
  await a.c.next('ping #1', (f) => f === '2', PING_INTERVAL_MS + 1500);
  a.c.send('3');
  await a.c.next('ping #2 (proves pong was accepted)', (f) => f === '2', PING_INTERVAL_MS + 1500);
  a.c.send('3');
  await c.c.waitClosed(PING_INTERVAL_MS + PING_TIMEOUT_MS + 1500);
  log('C was closed by the server after not answering a ping (as expected)');

  // 7. Stats.
  r = await http(base, 'GET', '/stats');
  assert(r.status === 200 && r.json.connections === 1, `stats.connections=${r.json.connections}, expected 1`);
  for (const k of ['rss', 'heap_used', 'cpu_user_us', 'cpu_system_us']) {
    assert(Number.isInteger(r.json[k]) && r.json[k] > 0, `stats.${k}`);
  }
  assert(r.json.acks === 1 && r.json.heartbeats === 1, 'stats: ack/heartbeat counters');

  // 8. A newer socket for agent-1 replaces A (A gets 41/agents, and is closed).
  const d = await connectAgent('D', wsBase, mint('agent-1', TENANT));
  assert(parseSio(d.conn).type === 0, 'D connect');
  await d.c.next('welcome', isEvent('welcome'));
  await a.c.next('DISCONNECT on replaced socket', (f) => f === '41/agents,');
  r = await http(base, 'POST', '/emit/agent/agent-1', { type: 'task_assigned', data: { n: 2 } });
  assert(r.json.delivered === true, 'emit to replaced agent');
  checkEventPayload(await d.c.next('event on replacement socket', isEvent('event')), 'task_assigned', { n: 2 });

  // 9. GC endpoint (server was started with --expose-gc).
  r = await http(base, 'POST', '/gc');
  assert(r.status === 200 && r.json.gc === true, '/gc must report gc:true under --expose-gc');
  r = await http(base, 'GET', '/stats');
  assert(r.json.connections === 1, `stats.connections after replacement = ${r.json.connections}`);

  // 10. Clean shutdown on SIGTERM.
  server.removeAllListeners('exit');
  const exited = new Promise((resolve) => server.once('exit', (code, sig) => resolve({ code, sig })));
  server.kill('SIGTERM');
  const { code, sig } = await Promise.race([exited, new Promise((res) => setTimeout(() => res({ code: 'timeout' }), 6000))]);
  assert(code === 0, `server did not exit cleanly on SIGTERM (code ${code}, signal ${sig})`);
  await d.c.waitClosed(1000);
  log('server exited 0 after SIGTERM');
}

main().then(
  () => {
    cleanup();
    process.stdout.write(`SMOKE OK (${Date.now() - T0} ms)\n`);
    process.exit(0);
  },
  (err) => fail(err.stack || String(err)),
);
