//! Routing: `emit_to_agent`, `emit_to_tenant`, `online_agents`; and the one
//! counterpart a gateway session talks to (attach, detach, replay, ack, touch, status).
//!
//! An emit appends to the inbox first (durable); after the commit the events are pushed
//! to this node's sessions and announced to the nodes holding the other agents
//! ([`route`]). A session that misses a push (not connected, queue full, a lost
//! message) still gets the event from its inbox.

mod batch;
mod logs;
mod pollers;
mod route;
mod sessions;

pub use batch::BatchEvent;
pub use pollers::{InboxWatch, Pollers};
pub use route::{Fanout, Upkeep};
pub use sessions::{Push, SessionCtl, SessionHandle, Sessions};

use std::sync::Arc;

use nexus_proto::{AgentId, EventData, EventId, EventType, Seq, SessionId, TenantId, close};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::group_commit::SubmitError;
use crate::inbox::Inbox;
use crate::presence::{Presence, PresenceEntry, PresenceError, Update};
use crate::quota::Quotas;
use crate::store::{Cursor, InboxEvent, NewInboxEvent, Store, StoreError};
use crate::time::now_ms;

/// An event to route. Its `data` is JSON text, encoded once here and then stored and
/// sent verbatim (every agent's copy shares it).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventType,
    pub data: Arc<str>,
    pub trace_id: Option<Arc<str>>,
    /// A repeat with the same key (per agent) returns the first event instead.
    pub idempotency_key: Option<String>,
}

impl NewEvent {
    /// A typed event, as processors and tools send them.
    pub fn encode<T: EventData>(data: &T) -> Result<NewEvent, serde_json::Error> {
        Ok(NewEvent::json_text(T::KIND, serde_json::to_string(data)?))
    }

    /// An event whose `data` an operator or a sender gave as JSON.
    pub fn from_json(kind: EventType, data: &serde_json::Value) -> NewEvent {
        NewEvent::json_text(kind, data.to_string())
    }

    /// `data` must be JSON text: it is stored and sent as it is.
    pub fn json_text(kind: EventType, data: String) -> NewEvent {
        NewEvent {
            kind,
            data: data.into(),
            trace_id: None,
            idempotency_key: None,
        }
    }

    pub fn key(mut self, key: impl Into<String>) -> NewEvent {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn trace(mut self, trace_id: Option<&str>) -> NewEvent {
        self.trace_id = trace_id.map(Into::into);
        self
    }
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Emitted {
    pub event_id: EventId,
    pub seq: Seq,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct TenantEmitted {
    pub event_id: EventId,
    /// How many active agents got the event.
    pub agents: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Append(#[from] SubmitError),
}

/// A session's end of [`Hub::attach`].
pub struct Attached {
    pub session_id: SessionId,
    pub rx: mpsc::Receiver<Push>,
    pub ctl: Arc<SessionCtl>,
}

pub struct Hub {
    store: Store,
    inbox: Inbox,
    node: Upkeep,
    /// Each tenant's inbox retention comes from its tier.
    quotas: Arc<Quotas>,
}

impl Hub {
    pub fn new(inbox: Inbox, node: Upkeep, quotas: Arc<Quotas>) -> Hub {
        Hub {
            store: node.store.clone(),
            inbox,
            node,
            quotas,
        }
    }

    /// How long the tenant's events wait in an inbox, in ms.
    async fn ttl_ms(&self, tenant: TenantId) -> Result<i64, StoreError> {
        let retention = self.quotas.inbox_retention(tenant).await?;
        Ok(retention.as_millis().try_into().unwrap_or(i64::MAX))
    }

    pub fn node_id(&self) -> &str {
        &self.node.node_id
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.node.sessions
    }

    pub fn presence(&self) -> &Arc<dyn Presence> {
        &self.node.presence
    }

    /// Registers a waiting HTTP poll of `agent`'s inbox: woken by commits on this node.
    pub fn watch_inbox(&self, agent: AgentId) -> InboxWatch {
        self.node.sessions.pollers.watch(agent)
    }

    /// Whether a poll of `agent`'s inbox waits on this node.
    pub fn polling(&self, agent: AgentId) -> bool {
        self.node.sessions.pollers.polling(agent)
    }

    /// Records a cumulative ack now, not in the next batch: for callers that answer
    /// only once it is durable.
    pub async fn ack_now(&self, agent: AgentId, seq: Seq) -> Result<(), StoreError> {
        self.store.save_acks(&[(agent, seq)]).await
    }

    /// Opens a session for `agent`: registered for pushes here, then in presence; an
    /// older session of the agent, on any node, is closed with 4010. `None` when the
    /// tenant already has `cap` agents connected (presence refused it).
    pub async fn attach(
        &self,
        agent: AgentId,
        tenant: TenantId,
        outbound: usize,
        cap: Option<u32>,
    ) -> Option<Attached> {
        let session_id = SessionId::new_v7();
        let (tx, rx) = mpsc::channel(outbound.max(1));
        let ctl = Arc::new(SessionCtl::default());
        // Pushes first, then the inbox read: see `gateway::session`.
        self.node.sessions.register(
            agent,
            SessionHandle {
                session_id,
                tenant,
                tx,
                ctl: ctl.clone(),
            },
        );
        let now = now_ms();
        let entry = PresenceEntry {
            agent_id: agent,
            tenant_id: tenant,
            session_id,
            status: "online".into(),
            detail: None,
            capabilities: Vec::new(),
            node_id: self.node.node_id.clone(),
            connected_at: now,
            last_seen: now,
        };
        match self.node.presence.connected(entry, cap).await {
            Ok(Some(stale)) if stale.session_id != session_id => {
                self.node.close(stale, close::SUPERSEDED).await
            }
            Ok(_) => {}
            Err(PresenceError::AtCapacity) => {
                self.node.sessions.unregister(agent, session_id);
                return None;
            }
            // The session works without presence; it is written back once Redis answers.
            Err(e) => {
                tracing::warn!(agent_id = %agent, error = %e, "presence unavailable at connect")
            }
        }
        Some(Attached {
            session_id,
            rx,
            ctl,
        })
    }

    /// The session is over: no more pushes, and offline unless a newer session holds the agent.
    pub async fn detach(&self, agent: AgentId, session: SessionId) {
        self.node.sessions.unregister(agent, session);
        if let Err(e) = self.node.presence.disconnected(agent, session).await {
            tracing::warn!(agent_id = %agent, error = %e, "presence unavailable at disconnect; will retry");
        }
    }

    /// Up to `limit` inbox events of `agent` after `after`, for replay.
    pub async fn replay_page(
        &self,
        agent: AgentId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<InboxEvent>, StoreError> {
        self.store.read_inbox(agent, after, limit).await
    }

    pub async fn cursor(&self, agent: AgentId) -> Result<Cursor, StoreError> {
        self.store.cursor(agent).await
    }

    /// A cumulative ack, saved within ~100 ms.
    pub async fn ack(&self, agent: AgentId, seq: Seq) {
        self.inbox.ack(agent, seq).await
    }

    /// A sign of life; never waits.
    pub fn touch(&self, agent: AgentId, session: SessionId) {
        self.node.presence.touch(agent, session)
    }

    pub async fn update(&self, agent: AgentId, session: SessionId, update: Update) {
        if let Err(e) = self.node.presence.update(agent, session, update).await {
            tracing::warn!(agent_id = %agent, error = %e, "presence unavailable for a status update");
        }
    }

    /// Appends the event to the agent's inbox, then pushes it if the agent is connected.
    /// With an idempotency key, a repeat returns the first event instead of a new one.
    pub async fn emit_to_agent(
        &self,
        tenant: TenantId,
        agent: AgentId,
        event: NewEvent,
    ) -> Result<Emitted, EmitError> {
        if let Some(key) = &event.idempotency_key
            && let Some((event_id, seq)) = self.store.find_idempotent(agent, key).await?
        {
            return Ok(Emitted { event_id, seq });
        }
        let event_id = EventId::new_v7();
        let row = NewInboxEvent {
            agent,
            idempotency_key: event.idempotency_key.clone(),
            ..inbox_template(event_id, &event, self.ttl_ms(tenant).await?)
        };
        let stored = self.inbox.append(vec![row]).await;
        match stored {
            Ok(stored) => {
                let seq = stored.first().map_or(Seq::ZERO, |e| e.seq);
                Ok(Emitted { event_id, seq })
            }
            // Two requests with one key raced past the check: answer with the winner.
            Err(SubmitError::Store(e)) if matches!(*e, StoreError::Conflict(_)) => {
                let key = event.idempotency_key.as_deref().unwrap_or_default();
                let (event_id, seq) = self
                    .store
                    .find_idempotent(agent, key)
                    .await?
                    .ok_or(StoreError::NotFound("event"))?;
                Ok(Emitted { event_id, seq })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Emits `event` (which carries an idempotency key) to each of `agents`, in one
    /// append. Meant for keys that are new almost always (a webhook's first processing):
    /// it skips the per-agent lookup, and only when the key turns out to exist already
    /// (a retried job) does it fall back to [`Hub::emit_to_agent`] agent by agent.
    pub async fn emit_to_agents(
        &self,
        tenant: TenantId,
        agents: &[AgentId],
        event: NewEvent,
    ) -> Result<(), EmitError> {
        if agents.is_empty() {
            return Ok(());
        }
        let template = NewInboxEvent {
            idempotency_key: event.idempotency_key.clone(),
            ..inbox_template(EventId::new_v7(), &event, self.ttl_ms(tenant).await?)
        };
        let rows = agents
            .iter()
            .map(|a| NewInboxEvent {
                agent: *a,
                ..template.clone()
            })
            .collect();
        match self.inbox.append(rows).await {
            Ok(_) => Ok(()),
            Err(SubmitError::Store(e)) if matches!(*e, StoreError::Conflict(_)) => {
                for agent in agents {
                    self.emit_to_agent(tenant, *agent, event.clone()).await?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Appends one event (one id) to the tenant's log, stored once: every agent of the
    /// tenant reads it in its own stream. Then every node pushes it to its sessions of
    /// the tenant (one message per node).
    pub async fn emit_to_tenant(
        &self,
        tenant: TenantId,
        event: NewEvent,
    ) -> Result<TenantEmitted, EmitError> {
        let agents = self.store.active_agents(tenant).await?;
        let event_id = EventId::new_v7();
        let entry = (event_id, event.kind, event.data, event.trace_id);
        let ttl_ms = self.ttl_ms(tenant).await?;
        let stored = self.inbox.append_log(tenant, &[entry], ttl_ms).await?;
        if let Some(head) = stored.last().map(|e| e.n) {
            self.node.announce_log(tenant, head).await;
        }
        Ok(TenantEmitted {
            event_id,
            agents: usize::try_from(agents).unwrap_or(usize::MAX),
        })
    }

    pub async fn online_agents(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<PresenceEntry>, PresenceError> {
        self.node.presence.online(tenant).await
    }
}

/// The stored form of `e` for one agent; every copy shares its encoded `data`.
fn inbox_template(event_id: EventId, e: &NewEvent, ttl_ms: i64) -> NewInboxEvent {
    NewInboxEvent {
        ttl_ms,
        agent: AgentId::from_uuid(uuid::Uuid::nil()),
        event_id,
        kind: e.kind,
        data: e.data.clone(),
        trace_id: e.trace_id.clone(),
        idempotency_key: None,
    }
}
