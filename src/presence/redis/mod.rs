//! The cluster profile's presence, in Redis with DESIGN §9's keys (the README's
//! "Running a cluster" lists them all): `socket:{id}` hashes and `agent:{id}` pointers
//! with the presence TTL, `tenant:{id}:agents` scored by expiry, `node:{id}` liveness.
//!
//! This node keeps its own entries in memory too: touches are noted there and renewed
//! in batches by [`Presence::maintain`] (one script call per 200 sessions, never a
//! round trip per heartbeat), and after an outage the entries are written back from it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use fred::prelude::*;
use futures_util::future::BoxFuture;
use nexus_proto::{AgentId, SessionId, TenantId};
use tokio::sync::broadcast;

mod nodes;
mod read;
mod scripts;
#[cfg(test)]
mod tests;

pub use read::online_in;

use super::{Presence, PresenceChange, PresenceEntry, PresenceError, Stale, Update};
use crate::redis::Redis;
use crate::telemetry::catalog;
use crate::time::now_ms;
use read::{agent_key, socket_key, tenant_key};

/// Sessions renewed per script call.
const RENEW_BATCH: usize = 200;
/// Agents located per script call.
const LOCATE_BATCH: usize = 1_000;
const NODES: &str = "nexus:nodes";

struct Local {
    entry: PresenceEntry,
    /// From Redis at connect; 0 until Redis has answered (then a rebuild takes one).
    fence: u64,
    touched: bool,
}

pub struct RedisPresence {
    redis: Redis,
    node_id: String,
    ttl_ms: i64,
    node_ttl: Duration,
    local: DashMap<AgentId, Local>,
    /// Disconnects Redis did not take (it was down): retried by maintenance.
    removals: Mutex<Vec<(AgentId, TenantId, SessionId)>>,
    /// Set when Redis failed us or lost entries: maintenance writes every local entry back.
    rebuild: AtomicBool,
    changes: broadcast::Sender<PresenceChange>,
}

impl RedisPresence {
    /// Registers the node and clears what a previous process with the same node id
    /// left behind (its sockets died with it).
    pub async fn start(
        redis: Redis,
        node_id: String,
        ttl: Duration,
        node_ttl: Duration,
    ) -> Result<RedisPresence, PresenceError> {
        let p = RedisPresence {
            redis,
            node_id,
            ttl_ms: ttl.as_millis().try_into().unwrap_or(i64::MAX),
            node_ttl,
            local: DashMap::new(),
            removals: Mutex::new(Vec::new()),
            rebuild: AtomicBool::new(false),
            changes: broadcast::channel(1024).0,
        };
        p.reap(&p.node_id, true).await?;
        p.heartbeat().await?;
        Ok(p)
    }

    /// After every reconnect the next maintenance round writes this node's entries
    /// back: Redis may have restarted empty, or other nodes reaped us meanwhile.
    pub fn rebuild_after_reconnects(self: &std::sync::Arc<Self>) {
        let mut reconnects = self.redis.client.reconnect_rx();
        let me = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            while let Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) = reconnects.recv().await
            {
                let Some(me) = me.upgrade() else { return };
                me.rebuild.store(true, Ordering::Release);
            }
        });
    }

    fn publish(&self, change: PresenceChange) {
        let _ = self.changes.send(change);
    }

    /// Marks the Redis view as suspect: the next maintenance round rewrites it.
    fn failed<T>(&self, r: Result<T, fred::error::Error>) -> Result<T, PresenceError> {
        r.map_err(|e| {
            self.rebuild.store(true, Ordering::Release);
            metrics::counter!(catalog::REDIS_ERRORS).increment(1);
            e.into()
        })
    }

    async fn write_entry(
        &self,
        e: &PresenceEntry,
        fence: u64,
        cap: Option<u32>,
    ) -> Result<Written, PresenceError> {
        let keys = vec![
            socket_key(e.session_id),
            agent_key(e.agent_id),
            format!("agent:{}:fence", e.agent_id),
            tenant_key(e.tenant_id),
            format!("node:{}:sockets", self.node_id),
        ];
        let caps = serde_json::to_string(&e.capabilities).unwrap_or_else(|_| "[]".into());
        let args = vec![
            e.session_id.to_string(),
            e.agent_id.to_string(),
            e.tenant_id.to_string(),
            self.node_id.clone(),
            e.connected_at.to_string(),
            e.status.clone(),
            caps,
            e.detail.clone().unwrap_or_default(),
            now_ms().to_string(),
            self.ttl_ms.to_string(),
            fence.to_string(),
            cap.unwrap_or(0).to_string(),
        ];
        let r: Vec<Value> = self.failed(
            scripts::CONNECT
                .evalsha_with_reload(&self.redis.client, keys, args)
                .await,
        )?;
        if r.first().and_then(Value::as_i64) == Some(-1) {
            return Ok(Written::Full);
        }
        let fence = r.first().and_then(Value::as_u64).unwrap_or(0);
        let other = match (r.get(1).and_then(Value::as_string), r.get(2)) {
            (Some(sid), Some(node)) => Some(Stale {
                agent_id: e.agent_id,
                node_id: node.as_string().unwrap_or_default(),
                session_id: sid
                    .parse()
                    .map_err(|_| PresenceError::Corrupt(format!("socket id {sid:?}")))?,
            }),
            _ => None,
        };
        Ok(if fence == 0 {
            Written::Stale
        } else {
            Written::Held {
                fence,
                replaced: other,
            }
        })
    }

    /// Writes every local entry back (after an outage or lost keys).
    async fn rebuild(&self) -> Result<Vec<Stale>, PresenceError> {
        let entries: Vec<(PresenceEntry, u64)> = self
            .local
            .iter()
            .map(|l| (l.entry.clone(), l.fence))
            .collect();
        let mut stale = Vec::new();
        for (entry, fence) in entries {
            match self.write_entry(&entry, fence, None).await? {
                Written::Held { fence, replaced } => {
                    if let Some(mut l) = self.local.get_mut(&entry.agent_id)
                        && l.entry.session_id == entry.session_id
                    {
                        l.fence = fence;
                    }
                    stale.extend(replaced);
                }
                // A newer session took the agent while Redis could not tell us.
                Written::Stale => stale.push(Stale {
                    agent_id: entry.agent_id,
                    node_id: self.node_id.clone(),
                    session_id: entry.session_id,
                }),
                // Written back without a cap: sessions already open stay.
                Written::Full => {}
            }
        }
        tracing::info!(node_id = %self.node_id, sessions = self.local.len(), "presence rebuilt in redis");
        Ok(stale)
    }

    async fn renew(&self) -> Result<(), PresenceError> {
        let mut due: Vec<(SessionId, AgentId, TenantId)> = Vec::new();
        for mut l in self.local.iter_mut() {
            if std::mem::take(&mut l.touched) {
                due.push((l.entry.session_id, l.entry.agent_id, l.entry.tenant_id));
            }
        }
        for batch in due.chunks(RENEW_BATCH) {
            let mut keys = Vec::with_capacity(batch.len() * 3);
            let mut args = vec![now_ms().to_string(), self.ttl_ms.to_string()];
            for (s, a, t) in batch {
                keys.extend([socket_key(*s), agent_key(*a), tenant_key(*t)]);
                args.extend([s.to_string(), a.to_string()]);
            }
            let gone: Vec<String> = self.failed(
                scripts::RENEW
                    .evalsha_with_reload(&self.redis.client, keys, args)
                    .await,
            )?;
            if !gone.is_empty() {
                tracing::warn!(
                    sessions = gone.len(),
                    "presence entries lost in redis; rebuilding"
                );
                self.rebuild.store(true, Ordering::Release);
            }
        }
        Ok(())
    }

    async fn retry_removals(&self) -> Result<(), PresenceError> {
        let pending = std::mem::take(&mut *self.removals.lock().unwrap_or_else(|p| p.into_inner()));
        for (i, (agent, tenant, session)) in pending.iter().enumerate() {
            if let Err(e) = self.remove(*agent, *tenant, *session).await {
                self.removals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&pending[i..]);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn remove(
        &self,
        agent: AgentId,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<(), PresenceError> {
        let keys = vec![
            socket_key(session),
            agent_key(agent),
            tenant_key(tenant),
            format!("node:{}:sockets", self.node_id),
        ];
        let args = vec![session.to_string(), agent.to_string()];
        let _: i64 = self.failed(
            scripts::DISCONNECT
                .evalsha_with_reload(&self.redis.client, keys, args)
                .await,
        )?;
        Ok(())
    }
}

enum Written {
    /// This session holds the agent, with this fence; it replaced `replaced`.
    Held { fence: u64, replaced: Option<Stale> },
    /// A session with a higher fence holds the agent.
    Stale,
    /// The tenant is at its cap: nothing was written.
    Full,
}

impl Presence for RedisPresence {
    fn connected(
        &self,
        entry: PresenceEntry,
        cap: Option<u32>,
    ) -> BoxFuture<'_, Result<Option<Stale>, PresenceError>> {
        Box::pin(async move {
            let (agent_id, session_id) = (entry.agent_id, entry.session_id);
            // Local first: if Redis cannot be reached, the entry is written back later.
            self.local.insert(
                agent_id,
                Local {
                    entry: entry.clone(),
                    fence: 0,
                    touched: false,
                },
            );
            let written = self.write_entry(&entry, 0, cap).await;
            if let Ok(Written::Full) = written {
                self.local
                    .remove_if(&agent_id, |_, l| l.entry.session_id == session_id);
                return Err(PresenceError::AtCapacity);
            }
            self.publish(PresenceChange::Online {
                tenant_id: entry.tenant_id,
                agent_id,
                node_id: self.node_id.clone(),
            });
            match written? {
                Written::Held { fence, replaced } => {
                    if let Some(mut l) = self.local.get_mut(&agent_id)
                        && l.entry.session_id == session_id
                    {
                        l.fence = fence;
                    }
                    Ok(replaced)
                }
                // A fresh fence is always the highest, and Full returned above.
                Written::Stale | Written::Full => Err(PresenceError::Corrupt(
                    "a new fence was not the highest".into(),
                )),
            }
        })
    }

    fn touch(&self, agent: AgentId, session: SessionId) {
        if let Some(mut l) = self.local.get_mut(&agent)
            && l.entry.session_id == session
        {
            l.touched = true;
            l.entry.last_seen = now_ms();
        }
    }

    fn update(
        &self,
        agent: AgentId,
        session: SessionId,
        update: Update,
    ) -> BoxFuture<'_, Result<(), PresenceError>> {
        Box::pin(async move {
            let mut fields: Vec<String> = vec!["last_seen".into(), now_ms().to_string()];
            let mut changed = None;
            {
                let Some(mut l) = self.local.get_mut(&agent) else {
                    return Ok(());
                };
                if l.entry.session_id != session {
                    return Ok(());
                }
                match update {
                    Update::Ready { capabilities } => {
                        let caps = serde_json::to_string(&capabilities).unwrap_or_default();
                        fields.extend(["capabilities".into(), caps]);
                        l.entry.capabilities = capabilities;
                    }
                    Update::Status { status, detail } => {
                        fields.extend(["status".into(), status.clone()]);
                        fields.extend(["detail".into(), detail.clone().unwrap_or_default()]);
                        changed = Some((l.entry.tenant_id, status.clone()));
                        l.entry.status = status;
                        l.entry.detail = detail;
                    }
                }
            }
            if let Some((tenant_id, status)) = changed {
                self.publish(PresenceChange::Status {
                    tenant_id,
                    agent_id: agent,
                    status,
                });
            }
            let _: i64 = self.failed(
                scripts::UPDATE
                    .evalsha_with_reload(&self.redis.client, vec![socket_key(session)], fields)
                    .await,
            )?;
            Ok(())
        })
    }

    fn disconnected(
        &self,
        agent: AgentId,
        session: SessionId,
    ) -> BoxFuture<'_, Result<(), PresenceError>> {
        Box::pin(async move {
            let Some((_, l)) = self
                .local
                .remove_if(&agent, |_, l| l.entry.session_id == session)
            else {
                return Ok(());
            };
            let tenant = l.entry.tenant_id;
            self.publish(PresenceChange::Offline {
                tenant_id: tenant,
                agent_id: agent,
            });
            let removed = self.remove(agent, tenant, session).await;
            if removed.is_err() {
                self.removals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((agent, tenant, session));
            }
            removed
        })
    }

    fn online(&self, tenant: TenantId) -> BoxFuture<'_, Result<Vec<PresenceEntry>, PresenceError>> {
        Box::pin(async move {
            let r = online_in(&self.redis, tenant).await;
            if let Err(PresenceError::Redis(_)) = &r {
                metrics::counter!(catalog::REDIS_ERRORS).increment(1);
            }
            r
        })
    }

    fn locate<'a>(
        &'a self,
        agents: &'a [AgentId],
    ) -> BoxFuture<'a, Result<Vec<(AgentId, String)>, PresenceError>> {
        Box::pin(async move {
            let mut found = Vec::new();
            // A tenant-wide event names every agent: chunks keep each script short,
            // so Redis serves others between them.
            for chunk in agents.chunks(LOCATE_BATCH) {
                let args: Vec<String> = chunk.iter().map(ToString::to_string).collect();
                let r: Vec<String> = self.failed(
                    scripts::LOCATE
                        .evalsha_with_reload(&self.redis.client, Vec::<String>::new(), args)
                        .await,
                )?;
                found.extend(
                    r.chunks_exact(2)
                        .filter_map(|p| Some((p[0].parse().ok()?, p[1].clone()))),
                );
            }
            Ok(found)
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<PresenceChange> {
        self.changes.subscribe()
    }

    fn maintain(&self) -> BoxFuture<'_, Result<Vec<Stale>, PresenceError>> {
        Box::pin(async move {
            self.heartbeat().await?;
            let mut stale = Vec::new();
            if self.rebuild.swap(false, Ordering::AcqRel) {
                match self.rebuild().await {
                    Ok(s) => stale = s,
                    Err(e) => {
                        self.rebuild.store(true, Ordering::Release);
                        return Err(e);
                    }
                }
            }
            self.retry_removals().await?;
            self.renew().await?;
            self.reap_dead_nodes().await?;
            Ok(stale)
        })
    }

    fn maintain_every(&self) -> Duration {
        self.node_ttl / 3
    }

    fn leave(&self) -> BoxFuture<'_, Result<(), PresenceError>> {
        Box::pin(async move {
            // Sessions still open past the grace period go too (compare-and-delete).
            self.reap(&self.node_id, true).await?;
            let _: i64 = self.failed(
                self.redis
                    .client
                    .del(format!("node:{}", self.node_id))
                    .await,
            )?;
            Ok(())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), PresenceError>> {
        Box::pin(async move {
            let _: String = self.failed(self.redis.client.ping(None).await)?;
            Ok(())
        })
    }
}
