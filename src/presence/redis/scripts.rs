//! The Lua scripts behind [`super::RedisPresence`]. Each runs atomically in Redis, which
//! is what makes "replace the agent's session" and "remove my entry unless a newer
//! session owns it" safe between nodes. Scripts that read keys named in other keys
//! (`agent:{id}` → `socket:{sid}`) assume one Redis, not Redis Cluster.

use std::sync::LazyLock;

use fred::types::scripts::Script;

/// KEYS: socket:{sid}, agent:{aid}, agent:{aid}:fence, tenant:{tid}:agents, node:{nid}:sockets.
/// ARGV: sid, agent_id, tenant_id, node_id, connected_at, status, capabilities (JSON),
/// detail, now_ms, ttl_ms, fence (0 = take a new one: Redis time in µs, above the last),
/// cap (0 = none: live agents the tenant may have).
/// Returns {fence} or {fence, replaced_sid, its_node}; {0, newer_sid, its_node} when a
/// session with a higher fence holds the agent (this one is stale and must close);
/// {-1} when the tenant is at its cap and this agent is not already among them.
pub static CONNECT: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local fence = tonumber(ARGV[11])
if fence == 0 then
  -- Above every fence this agent had, and time-ordered, so it stays above them even
  -- if Redis lost the counter (a restart without persistence).
  local t = redis.call('TIME')
  local last = tonumber(redis.call('GET', KEYS[3])) or 0
  fence = math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), last + 1)
  -- Kept a day, not forever (one key per agent ever seen): time orders fences anyway.
  redis.call('SET', KEYS[3], fence, 'PX', 86400000)
end
local cur = redis.call('GET', KEYS[2])
local prev_node = false
if cur and cur ~= ARGV[1] then
  local h = redis.call('HMGET', 'socket:' .. cur, 'node_id', 'fence')
  if (tonumber(h[2]) or 0) > fence then return {0, cur, h[1] or ''} end
  prev_node = h[1]
end
local cap = tonumber(ARGV[12])
if cap > 0 and not redis.call('ZSCORE', KEYS[4], ARGV[2])
  and redis.call('ZCOUNT', KEYS[4], '(' .. ARGV[9], '+inf') >= cap then
  return {-1}
end
redis.call('HSET', KEYS[1], 'agent_id', ARGV[2], 'tenant_id', ARGV[3], 'node_id', ARGV[4],
  'connected_at', ARGV[5], 'status', ARGV[6], 'capabilities', ARGV[7], 'detail', ARGV[8],
  'last_seen', ARGV[9], 'fence', fence)
redis.call('PEXPIRE', KEYS[1], ARGV[10])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[10])
redis.call('ZADD', KEYS[4], tonumber(ARGV[9]) + tonumber(ARGV[10]), ARGV[2])
redis.call('SADD', KEYS[5], ARGV[1])
if prev_node then return {fence, cur, prev_node} end
return {fence}
"#,
    )
});

/// Compare-and-delete. KEYS: socket:{sid}, agent:{aid}, tenant:{tid}:agents,
/// node:{nid}:sockets. ARGV: sid, agent_id. The agent's pointer and tenant membership go
/// only while they still name this session.
pub static DISCONNECT: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[4], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  return 1
end
return 0
"#,
    )
});

/// Batch renewal. KEYS: per session socket:{sid}, agent:{aid}, tenant:{tid}:agents.
/// ARGV: now_ms, ttl_ms, then per session sid, agent_id. Returns the sids whose entry
/// was gone (expired, reaped while this node was cut off, or Redis restarted).
pub static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local gone = {}
for i = 0, (#KEYS / 3) - 1 do
  local sock, agent, zset = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  local sid, aid = ARGV[3 + i * 2], ARGV[4 + i * 2]
  if redis.call('PEXPIRE', sock, ttl) == 1 then
    redis.call('HSET', sock, 'last_seen', now)
    if redis.call('GET', agent) == sid then
      redis.call('PEXPIRE', agent, ttl)
      redis.call('ZADD', zset, now + ttl, aid)
    end
  else
    gone[#gone + 1] = sid
  end
end
return gone
"#,
    )
});

/// KEYS: socket:{sid}. ARGV: field, value, … Writes only an existing entry.
pub static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"#,
    )
});

/// KEYS: tenant:{tid}:agents. ARGV: now_ms. Prunes expired members, then returns
/// {sid, {field, value, …}, …} for members whose session and node are alive.
pub static ONLINE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local out, alive = {}, {}
for _, a in ipairs(redis.call('ZRANGE', KEYS[1], ARGV[1], '+inf', 'BYSCORE')) do
  local sid = redis.call('GET', 'agent:' .. a)
  if sid then
    local h = redis.call('HGETALL', 'socket:' .. sid)
    local node = nil
    for i = 1, #h, 2 do if h[i] == 'node_id' then node = h[i + 1] end end
    if node then
      if alive[node] == nil then alive[node] = redis.call('EXISTS', 'node:' .. node) == 1 end
      if alive[node] then out[#out + 1] = sid; out[#out + 1] = h end
    end
  end
end
return out
"#,
    )
});

/// ARGV: agent ids. Returns {agent_id, node_id, …} for agents online on a live node.
pub static LOCATE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local out, alive = {}, {}
for _, a in ipairs(ARGV) do
  local sid = redis.call('GET', 'agent:' .. a)
  if sid then
    local node = redis.call('HGET', 'socket:' .. sid, 'node_id')
    if node then
      if alive[node] == nil then alive[node] = redis.call('EXISTS', 'node:' .. node) == 1 end
      if alive[node] then out[#out + 1] = a; out[#out + 1] = node end
    end
  end
end
return out
"#,
    )
});

/// Forgets a dead node's sessions. KEYS: node:{nid}, node:{nid}:sockets, nexus:nodes.
/// ARGV: node_id, force ('1': even if its liveness key exists — a node restarting under
/// the same id clears its previous life). Returns {agent_id, tenant_id, …} taken offline.
pub static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local gone = {}
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local h = redis.call('HMGET', 'socket:' .. sid, 'agent_id', 'tenant_id')
  if h[1] and h[2] and redis.call('GET', 'agent:' .. h[1]) == sid then
    redis.call('DEL', 'agent:' .. h[1])
    redis.call('ZREM', 'tenant:' .. h[2] .. ':agents', h[1])
    gone[#gone + 1] = h[1]; gone[#gone + 1] = h[2]
  end
  redis.call('DEL', 'socket:' .. sid)
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return gone
"#,
    )
});
