//! The embedded profile's presence: a concurrent map in this process.

use std::time::Duration;

use dashmap::DashMap;
use nexus_proto::{AgentId, SessionId, TenantId};
use tokio::sync::broadcast;

use futures_util::future::BoxFuture;

use super::{Presence, PresenceChange, PresenceEntry, PresenceError, Stale, Update};
use crate::time::now_ms;

pub struct MemoryPresence {
    ttl_ms: i64,
    agents: DashMap<AgentId, PresenceEntry>,
    /// Entries per tenant, for the tier's socket cap.
    per_tenant: DashMap<TenantId, u32>,
    changes: broadcast::Sender<PresenceChange>,
}

impl MemoryPresence {
    pub fn new(ttl: Duration) -> MemoryPresence {
        MemoryPresence {
            ttl_ms: ttl.as_millis() as i64,
            agents: DashMap::new(),
            per_tenant: DashMap::new(),
            changes: broadcast::channel(1024).0,
        }
    }

    fn publish(&self, change: PresenceChange) {
        // No subscribers is normal: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Drops entries whose TTL passed without a sign of life; returns how many.
    fn sweep(&self) -> usize {
        let deadline = now_ms() - self.ttl_ms;
        let mut gone = Vec::new();
        self.agents.retain(|_, e| {
            let alive = e.last_seen >= deadline;
            if !alive {
                gone.push((e.tenant_id, e.agent_id));
            }
            alive
        });
        for (tenant_id, agent_id) in &gone {
            self.left(*tenant_id);
            self.publish(PresenceChange::Offline {
                tenant_id: *tenant_id,
                agent_id: *agent_id,
            });
        }
        gone.len()
    }
}

impl MemoryPresence {
    /// The tenant's count is held (its shard locked) from the check to the insert, so
    /// two connects cannot both take the last place. Lock order: tenant, then agent;
    /// removals never hold both.
    fn record(
        &self,
        entry: PresenceEntry,
        cap: Option<u32>,
    ) -> Result<Option<Stale>, PresenceError> {
        let change = PresenceChange::Online {
            tenant_id: entry.tenant_id,
            agent_id: entry.agent_id,
            node_id: entry.node_id.clone(),
        };
        let mut count = self.per_tenant.entry(entry.tenant_id).or_insert(0);
        let replacing = self
            .agents
            .get(&entry.agent_id)
            .is_some_and(|e| e.tenant_id == entry.tenant_id);
        if !replacing {
            if cap.is_some_and(|cap| *count >= cap) {
                return Err(PresenceError::AtCapacity);
            }
            *count += 1;
        }
        let previous = self.agents.insert(entry.agent_id, entry);
        drop(count);
        self.publish(change);
        Ok(previous.map(|p| Stale {
            agent_id: p.agent_id,
            node_id: p.node_id,
            session_id: p.session_id,
        }))
    }

    /// One entry of `tenant` went.
    fn left(&self, tenant: TenantId) {
        if let Some(mut n) = self.per_tenant.get_mut(&tenant) {
            *n = n.saturating_sub(1);
        }
    }

    fn apply(&self, agent: AgentId, session: SessionId, update: Update) {
        let mut changed = None;
        if let Some(mut e) = self.agents.get_mut(&agent)
            && e.session_id == session
        {
            e.last_seen = now_ms();
            match update {
                Update::Ready { capabilities } => e.capabilities = capabilities,
                Update::Status { status, detail } => {
                    changed = Some((e.tenant_id, status.clone()));
                    e.status = status;
                    e.detail = detail;
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
    }

    fn remove(&self, agent: AgentId, session: SessionId) {
        if let Some((_, e)) = self
            .agents
            .remove_if(&agent, |_, e| e.session_id == session)
        {
            self.left(e.tenant_id);
            self.publish(PresenceChange::Offline {
                tenant_id: e.tenant_id,
                agent_id: agent,
            });
        }
    }

    fn list(&self, tenant: TenantId) -> Vec<PresenceEntry> {
        let deadline = now_ms() - self.ttl_ms;
        let mut out: Vec<PresenceEntry> = self
            .agents
            .iter()
            .filter(|e| e.tenant_id == tenant && e.last_seen >= deadline)
            .map(|e| e.value().clone())
            .collect();
        out.sort_by_key(|e| e.agent_id);
        out
    }
}

/// Everything here is in memory: each future is ready at once.
impl Presence for MemoryPresence {
    fn connected(
        &self,
        entry: PresenceEntry,
        cap: Option<u32>,
    ) -> BoxFuture<'_, Result<Option<Stale>, PresenceError>> {
        Box::pin(std::future::ready(self.record(entry, cap)))
    }

    fn touch(&self, agent: AgentId, session: SessionId) {
        if let Some(mut e) = self.agents.get_mut(&agent)
            && e.session_id == session
        {
            e.last_seen = now_ms();
        }
    }

    fn update(
        &self,
        agent: AgentId,
        session: SessionId,
        update: Update,
    ) -> BoxFuture<'_, Result<(), PresenceError>> {
        self.apply(agent, session, update);
        Box::pin(std::future::ready(Ok(())))
    }

    fn disconnected(
        &self,
        agent: AgentId,
        session: SessionId,
    ) -> BoxFuture<'_, Result<(), PresenceError>> {
        self.remove(agent, session);
        Box::pin(std::future::ready(Ok(())))
    }

    fn online(&self, tenant: TenantId) -> BoxFuture<'_, Result<Vec<PresenceEntry>, PresenceError>> {
        Box::pin(std::future::ready(Ok(self.list(tenant))))
    }

    fn locate<'a>(
        &'a self,
        agents: &'a [AgentId],
    ) -> BoxFuture<'a, Result<Vec<(AgentId, String)>, PresenceError>> {
        let found = agents
            .iter()
            .filter_map(|a| self.agents.get(a).map(|e| (*a, e.node_id.clone())))
            .collect();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn subscribe(&self) -> broadcast::Receiver<PresenceChange> {
        self.changes.subscribe()
    }

    fn maintain(&self) -> BoxFuture<'_, Result<Vec<Stale>, PresenceError>> {
        self.sweep();
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    fn maintain_every(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), PresenceError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn leave(&self) -> BoxFuture<'_, Result<(), PresenceError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
