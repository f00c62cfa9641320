//! The embedded profile's presence: a concurrent map in this process.

use std::time::Duration;

use dashmap::DashMap;
use nexus_proto::{AgentId, SessionId, TenantId};
use tokio::sync::broadcast;

use super::{Presence, PresenceChange, PresenceEntry, Update};
use crate::store::now_ms;

pub struct MemoryPresence {
    ttl_ms: i64,
    agents: DashMap<AgentId, PresenceEntry>,
    changes: broadcast::Sender<PresenceChange>,
}

impl MemoryPresence {
    pub fn new(ttl: Duration) -> MemoryPresence {
        MemoryPresence {
            ttl_ms: ttl.as_millis() as i64,
            agents: DashMap::new(),
            changes: broadcast::channel(1024).0,
        }
    }

    fn publish(&self, change: PresenceChange) {
        // No subscribers is normal: nobody is watching.
        let _ = self.changes.send(change);
    }

    /// Drops entries whose TTL passed without a sign of life; returns how many.
    pub fn sweep(&self) -> usize {
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
            self.publish(PresenceChange::Offline {
                tenant_id: *tenant_id,
                agent_id: *agent_id,
            });
        }
        gone.len()
    }
}

impl Presence for MemoryPresence {
    fn connected(&self, entry: PresenceEntry) {
        let change = PresenceChange::Online {
            tenant_id: entry.tenant_id,
            agent_id: entry.agent_id,
            node_id: entry.node_id.clone(),
        };
        self.agents.insert(entry.agent_id, entry);
        self.publish(change);
    }

    fn touch(&self, agent: AgentId, session: SessionId) {
        if let Some(mut e) = self.agents.get_mut(&agent)
            && e.session_id == session
        {
            e.last_seen = now_ms();
        }
    }

    fn update(&self, agent: AgentId, session: SessionId, update: Update) {
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

    fn disconnected(&self, agent: AgentId, session: SessionId) {
        if let Some((_, e)) = self
            .agents
            .remove_if(&agent, |_, e| e.session_id == session)
        {
            self.publish(PresenceChange::Offline {
                tenant_id: e.tenant_id,
                agent_id: agent,
            });
        }
    }

    fn online(&self, tenant: TenantId) -> Vec<PresenceEntry> {
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

    fn subscribe(&self) -> broadcast::Receiver<PresenceChange> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tenant: TenantId, agent: AgentId, session: SessionId) -> PresenceEntry {
        PresenceEntry {
            agent_id: agent,
            tenant_id: tenant,
            session_id: session,
            status: "online".into(),
            detail: None,
            capabilities: vec![],
            node_id: "n1".into(),
            connected_at: now_ms(),
            last_seen: now_ms(),
        }
    }

    #[test]
    fn a_stale_session_cannot_remove_its_successor() {
        let p = MemoryPresence::new(Duration::from_secs(300));
        let (t, a) = (TenantId::new_v7(), AgentId::new_v7());
        let (old, new) = (SessionId::new_v7(), SessionId::new_v7());
        p.connected(entry(t, a, old));
        p.connected(entry(t, a, new));
        p.disconnected(a, old);
        assert_eq!(p.online(t).len(), 1);
        p.disconnected(a, new);
        assert!(p.online(t).is_empty());
    }

    #[test]
    fn expired_entries_are_not_online_and_are_swept() {
        let p = MemoryPresence::new(Duration::from_secs(300));
        let (t, a, s) = (TenantId::new_v7(), AgentId::new_v7(), SessionId::new_v7());
        let mut e = entry(t, a, s);
        e.last_seen -= 301_000;
        p.connected(e);
        let mut changes = p.subscribe();
        assert!(p.online(t).is_empty());
        assert_eq!(p.sweep(), 1);
        assert!(matches!(
            changes.try_recv(),
            Ok(PresenceChange::Offline { .. })
        ));
    }

    #[test]
    fn tenants_are_isolated_and_status_is_published() {
        let p = MemoryPresence::new(Duration::from_secs(300));
        let (t1, t2) = (TenantId::new_v7(), TenantId::new_v7());
        let (a, s) = (AgentId::new_v7(), SessionId::new_v7());
        p.connected(entry(t1, a, s));
        let mut changes = p.subscribe();
        p.update(
            a,
            s,
            Update::Status {
                status: "busy".into(),
                detail: Some("x".into()),
            },
        );
        assert!(p.online(t2).is_empty());
        assert_eq!(p.online(t1)[0].status, "busy");
        assert!(matches!(
            changes.try_recv(),
            Ok(PresenceChange::Status { .. })
        ));
    }
}
