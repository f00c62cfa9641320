'use strict';

// Socket.IO baseline server: the "original design" (NestJS gateway + Socket.IO)
// reduced to plain Node so a load tool can measure it side by side with Nexus.
// See README.md for the wire protocol and the HTTP control endpoints.

const http = require('node:http');
const crypto = require('node:crypto');
const { Server } = require('socket.io');
const jwt = require('jsonwebtoken');

// ---------------------------------------------------------------- config ---

const JWT_SECRET = process.env.JWT_SECRET;
if (!JWT_SECRET) {
  process.stderr.write('error: JWT_SECRET is required (HS256 shared secret used to verify agent tokens)\n');
  process.exit(2);
}

const HOST = process.env.HOST || '127.0.0.1';
const PORT = parsePort(process.env.PORT);
const REDIS_URL = process.env.REDIS_URL || '';
// Match Nexus defaults. Overridable only so the smoke test can observe a ping quickly.
const PING_INTERVAL_MS = parseMs('PING_INTERVAL_MS', 30000);
const PING_TIMEOUT_MS = parseMs('PING_TIMEOUT_MS', 10000);
const MAX_BUFFER = 64 * 1024; // maxHttpBufferSize, also the HTTP body limit below
const NAMESPACE = '/agents';

function parsePort(v) {
  if (v === undefined || v === '') return 3000;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    process.stderr.write(`error: invalid PORT ${JSON.stringify(v)}\n`);
    process.exit(2);
  }
  return n;
}

function parseMs(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`error: invalid ${name} ${JSON.stringify(v)}\n`);
    process.exit(2);
  }
  return n;
}

// ----------------------------------------------------------------- state ---

/** agentId -> Socket (sockets connected to THIS process only) */
const agents = new Map();
const counters = { events_emitted: 0, heartbeats: 0, acks: 0, auth_failures: 0 };

// ------------------------------------------------------------------ http ---

const httpServer = http.createServer(handleHttp);

const io = new Server(httpServer, {
  maxHttpBufferSize: MAX_BUFFER,
  pingInterval: PING_INTERVAL_MS,
  pingTimeout: PING_TIMEOUT_MS,
});

function sendJson(res, status, body) {
  const buf = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': buf.length });
  res.end(buf);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BUFFER) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size === 0) return resolve({});
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(Object.assign(new Error('invalid JSON body'), { status: 400 }));
      }
    });
    req.on('error', reject);
  });
}

function buildEvent(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw Object.assign(new Error('body must be a JSON object'), { status: 400 });
  }
  if (typeof body.type !== 'string' || body.type === '') {
    throw Object.assign(new Error('"type" must be a non-empty string'), { status: 400 });
  }
  return {
    type: body.type,
    id: crypto.randomUUID(),
    ts: new Date().toISOString(),
    data: body.data === undefined ? {} : body.data,
  };
}

async function handleHttp(req, res) {
  // socket.io (engine.io) intercepts /socket.io/* before this handler runs.
  const path = (req.url || '/').split('?', 1)[0];
  try {
    let m;
    if ((m = /^\/emit\/agent\/([^/]+)\/?$/.exec(path))) {
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
      const agentId = decodeURIComponent(m[1]);
      const evt = buildEvent(await readJson(req));
      const sock = agents.get(agentId);
      if (sock && sock.connected) {
        sock.emit('event', evt);
        counters.events_emitted++;
        return sendJson(res, 202, { delivered: true });
      }
      if (REDIS_URL) {
        // Cluster mode: the agent may live on another node; route via its personal room.
        nsp.to(`agent:${agentId}`).emit('event', evt);
        return sendJson(res, 202, { delivered: false, forwarded: true });
      }
      return sendJson(res, 202, { delivered: false });
    }
    if ((m = /^\/emit\/tenant\/([^/]+)\/?$/.exec(path))) {
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
      const room = `tenant:${decodeURIComponent(m[1])}`;
      const evt = buildEvent(await readJson(req));
      const size = nsp.adapter.rooms.get(room)?.size || 0; // local sockets in the room
      nsp.to(room).emit('event', evt);
      counters.events_emitted += size;
      return sendJson(res, 202, { agents: size });
    }
    if (path === '/stats') {
      if (req.method !== 'GET') return sendJson(res, 405, { error: 'method not allowed' });
      return sendJson(res, 200, stats());
    }
    if (path === '/gc') {
      if (req.method !== 'POST') return sendJson(res, 405, { error: 'method not allowed' });
      const ran = typeof global.gc === 'function';
      if (ran) global.gc();
      return sendJson(res, 200, { gc: ran, rss: process.memoryUsage().rss });
    }
    if (path === '/healthz') return sendJson(res, 200, { ok: true });
    return sendJson(res, 404, { error: 'not found' });
  } catch (err) {
    if (!res.headersSent) sendJson(res, err.status || 500, { error: err.message });
  }
}

function stats() {
  const mem = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    connections: nsp.sockets.size,
    engine_clients: io.engine.clientsCount,
    agents: agents.size,
    rss: mem.rss,
    heap_used: mem.heapUsed,
    heap_total: mem.heapTotal,
    external: mem.external,
    cpu_user_us: cpu.user,
    cpu_system_us: cpu.system,
    uptime_s: process.uptime(),
    ...counters,
  };
}

// ------------------------------------------------------------- socket.io ---

// Nothing is served on the default namespace: refuse it so no unauthenticated socket lingers.
io.use((_socket, next) => next(new Error('use the /agents namespace')));

const nsp = io.of(NAMESPACE);

nsp.use((socket, next) => {
  const hs = socket.handshake;
  let token = (hs.auth && hs.auth.token) || hs.query.token;
  if (typeof token === 'string' && token.startsWith('Bearer ')) token = token.slice(7);
  try {
    if (typeof token !== 'string' || token === '') throw new Error('missing token');
    const claims = jwt.verify(token, JWT_SECRET, { algorithms: ['HS256'] });
    const agentId = claims.sub;
    const tenantId = claims.tenant_id;
    if (typeof agentId !== 'string' || agentId === '') throw new Error('missing sub');
    if ((typeof tenantId !== 'string' && typeof tenantId !== 'number') || tenantId === '') {
      throw new Error('missing tenant_id');
    }
    socket.data.agentId = agentId;
    socket.data.tenantId = String(tenantId);
    next();
  } catch {
    counters.auth_failures++;
    next(new Error('unauthorized'));
  }
});

nsp.on('connection', (socket) => {
  const { agentId, tenantId } = socket.data;

  // A newer socket for the same agent replaces the older one.
  const prev = agents.get(agentId);
  agents.set(agentId, socket);
  if (prev && prev !== socket) prev.disconnect(true);
  if (REDIS_URL) {
    // Cluster mode: also evict copies on other nodes and join the personal room.
    // except(): the cluster adapter applies the local part only after the publish resolves.
    socket.join(`agent:${agentId}`);
    nsp.in(`agent:${agentId}`).except(socket.id).disconnectSockets(true);
  }

  socket.join(`tenant:${tenantId}`);
  socket.emit('welcome', { session_id: socket.id, agent_id: agentId, tenant_id: tenantId });

  socket.on('heartbeat', () => { counters.heartbeats++; });
  socket.on('ack', () => { counters.acks++; });
  socket.on('disconnect', () => {
    if (agents.get(agentId) === socket) agents.delete(agentId);
  });
});

// ------------------------------------------------------------ lifecycle ---

let redisClients = [];

async function setupRedis() {
  if (!REDIS_URL) return;
  const { createClient } = require('redis');
  const { createAdapter } = require('@socket.io/redis-adapter');
  const pub = createClient({ url: REDIS_URL });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on('error', (e) => process.stderr.write(`redis error: ${e.message}\n`));
  await Promise.all([pub.connect(), sub.connect()]);
  redisClients = [pub, sub];
  io.adapter(createAdapter(pub, sub));
}

let shuttingDown = false;
function shutdown(signal) {
  if (shuttingDown) return;
  shuttingDown = true;
  process.stderr.write(`received ${signal}, shutting down\n`);
  const force = setTimeout(() => process.exit(1), 5000);
  force.unref();
  // io.close() disconnects every socket and closes the underlying HTTP server.
  io.close(async () => {
    await Promise.allSettled(redisClients.map((c) => c.quit()));
    process.exit(0);
  });
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

setupRedis()
  .then(() => {
    httpServer.listen(PORT, HOST, () => {
      const a = httpServer.address();
      const host = a.family === 'IPv6' || a.family === 6 ? `[${a.address}]` : a.address;
      process.stdout.write(JSON.stringify({ listening: `${host}:${a.port}` }) + '\n');
    });
  })
  .catch((err) => {
    process.stderr.write(`error: startup failed: ${err.message}\n`);
    process.exit(1);
  });

httpServer.on('error', (err) => {
  process.stderr.write(`error: http server: ${err.message}\n`);
  process.exit(1);
});
