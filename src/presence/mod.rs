//! Who is online: one entry per connected agent, with status, capabilities and the
//! node holding its socket. An entry lives `ttl` past its last sign of life
//! (heartbeat, pong or any frame); a node that dies without saying goodbye ages out.
//!
//! [`Presence`] is the seam between the in-process registry (embedded profile) and
//! the Redis one (cluster profile); both publish [`PresenceChange`]s for live views.

mod memory;

pub use memory::MemoryPresence;

use nexus_proto::{AgentId, SessionId, TenantId};
use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize, PartialEq)]
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
    pub connected_at: i64,
    #[serde(with = "crate::time::ms_rfc3339")]
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

pub trait Presence: Send + Sync + 'static {
    /// Records a new session; it replaces any entry the agent had.
    fn connected(&self, entry: PresenceEntry);
    /// A sign of life: renews the entry's TTL. Cheap; called on every heartbeat.
    fn touch(&self, agent: AgentId, session: SessionId);
    fn update(&self, agent: AgentId, session: SessionId, update: Update);
    /// Removes the entry if it still belongs to `session` (a newer one may have replaced it).
    fn disconnected(&self, agent: AgentId, session: SessionId);
    /// Online agents of a tenant whose TTL has not passed.
    fn online(&self, tenant: TenantId) -> Vec<PresenceEntry>;
    fn subscribe(&self) -> broadcast::Receiver<PresenceChange>;
}
