//! Who is online: one entry per connected agent, with status, capabilities and the
//! node holding its socket. An entry lives `ttl` past its last sign of life
//! (heartbeat, pong or any frame); a node that dies without saying goodbye ages out,
//! and in a cluster its entries go as soon as its liveness key does.
//!
//! [`Presence`] is the seam between the in-process registry (embedded profile,
//! [`MemoryPresence`]) and the Redis one (cluster profile, [`RedisPresence`]); the same
//! tests run against both. Maintenance (renewals, sweeps, dead nodes) is on the trait,
//! run by the node every [`Presence::maintain_every`].

mod memory;
mod redis;
#[cfg(test)]
mod tests;

pub use memory::MemoryPresence;
pub use redis::{RedisPresence, online_in};

use std::time::Duration;

use futures_util::future::BoxFuture;
use nexus_proto::{AgentId, SessionId, TenantId};
use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct PresenceEntry {
    pub agent_id: AgentId,
    #[serde(skip)]
    pub tenant_id: TenantId,
    #[serde(skip)]
    pub session_id: SessionId,
    pub status: String,
    pub detail: Option<String>,
    pub capabilities: Vec<String>,
    pub node_id: String,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub connected_at: i64,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PresenceChange {
    Online {
        tenant_id: TenantId,
        agent_id: AgentId,
        node_id: String,
    },
    Offline {
        tenant_id: TenantId,
        agent_id: AgentId,
    },
    Status {
        tenant_id: TenantId,
        agent_id: AgentId,
        status: String,
    },
}

/// What a session reports about itself after connecting.
#[derive(Debug, Clone)]
pub enum Update {
    Ready {
        capabilities: Vec<String>,
    },
    Status {
        status: String,
        detail: Option<String>,
    },
}

/// A session that must close (4010) because a newer session of its agent holds the
/// agent now; it may live on any node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub agent_id: AgentId,
    pub node_id: String,
    pub session_id: SessionId,
}

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("redis answered something unexpected: {0}")]
    Corrupt(String),
    /// The tenant already has its tier's number of sessions; nothing was recorded.
    #[error("the tenant has as many sessions as its tier allows")]
    AtCapacity,
}

pub trait Presence: Send + Sync + 'static {
    /// Records a new session; it replaces any entry the agent had. Returns the session
    /// it replaced, if that one is still open somewhere (it is to be closed with 4010).
    /// With `cap`, a tenant already holding `cap` other agents' sessions gets
    /// [`PresenceError::AtCapacity`], checked and recorded atomically.
    fn connected(
        &self,
        entry: PresenceEntry,
        cap: Option<u32>,
    ) -> BoxFuture<'_, Result<Option<Stale>, PresenceError>>;
    /// A sign of life. Never waits: the TTL is renewed by the next maintenance round.
    fn touch(&self, agent: AgentId, session: SessionId);
    fn update(
        &self,
        agent: AgentId,
        session: SessionId,
        update: Update,
    ) -> BoxFuture<'_, Result<(), PresenceError>>;
    /// Removes the entry if it still belongs to `session` (a newer one may have replaced it).
    fn disconnected(
        &self,
        agent: AgentId,
        session: SessionId,
    ) -> BoxFuture<'_, Result<(), PresenceError>>;
    /// Online agents of a tenant whose TTL has not passed, by agent id.
    fn online(&self, tenant: TenantId) -> BoxFuture<'_, Result<Vec<PresenceEntry>, PresenceError>>;
    /// The node holding each of `agents` that is online anywhere.
    fn locate<'a>(
        &'a self,
        agents: &'a [AgentId],
    ) -> BoxFuture<'a, Result<Vec<(AgentId, String)>, PresenceError>>;
    /// Changes made through this node, for live views.
    fn subscribe(&self) -> broadcast::Receiver<PresenceChange>;
    /// One round of upkeep: renew what was touched, drop what expired, forget dead
    /// nodes' sessions, rewrite this node's entries after an outage. Returns sessions
    /// that turned out to be superseded while presence could not tell.
    fn maintain(&self) -> BoxFuture<'_, Result<Vec<Stale>, PresenceError>>;
    /// How often [`Presence::maintain`] should run.
    fn maintain_every(&self) -> Duration;
    /// Whether the backing service answers (for `/ready`).
    fn ping(&self) -> BoxFuture<'_, Result<(), PresenceError>>;
    /// The node is stopping (its sessions have closed): its records go now rather than
    /// when they expire.
    fn leave(&self) -> BoxFuture<'_, Result<(), PresenceError>>;
}
