//! Routing: `emit_to_agent`, `emit_to_tenant`, `online_agents`, and the registry of
//! this node's live sessions that committed events are pushed to.
//!
//! An emit appends to the inbox first (durable), then pushes; a session that misses
//! a push (not connected, queue full) still gets the event from its inbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use dashmap::DashMap;
use nexus_proto::{AgentId, EventId, EventType, Seq, SessionId, TenantId, close};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::inbox::{AppendError, Deliver, Inbox};
use crate::presence::{Presence, PresenceEntry};
use crate::store::{AgentStatus, InboxEvent, NewInboxEvent, Store, StoreError};

/// How a session is told to close from outside (supersede, slow consumer, shutdown).
#[derive(Default)]
pub struct SessionCtl {
    code: AtomicU16,
    closed: CancellationToken,
}

impl SessionCtl {
    /// The first close wins; later ones are ignored.
    pub fn close(&self, code: u16) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.closed.cancel();
    }

    pub fn code(&self) -> u16 {
        self.code.load(Ordering::Acquire)
    }

    pub async fn closed(&self) {
        self.closed.cancelled().await
    }
}

pub struct SessionHandle {
    pub session_id: SessionId,
    /// Boxed: a channel allocates its first block of slots up front, per session, and
    /// a pointer-sized slot keeps that cheap for the many idle sockets.
    pub tx: mpsc::Sender<Box<InboxEvent>>,
    pub ctl: Arc<SessionCtl>,
}

/// This node's live sessions, one per agent.
#[derive(Default)]
pub struct Sessions {
    map: DashMap<AgentId, SessionHandle>,
}

impl Sessions {
    /// Registers a session; an older session of the same agent is closed with 4010.
    pub fn register(&self, agent: AgentId, handle: SessionHandle) {
        if let Some(old) = self.map.insert(agent, handle) {
            old.ctl.close(close::SUPERSEDED);
        }
    }

    pub fn unregister(&self, agent: AgentId, session: SessionId) {
        self.map.remove_if(&agent, |_, h| h.session_id == session);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Closes every session with `code` (graceful shutdown: 1012).
    pub fn close_all(&self, code: u16) {
        for h in self.map.iter() {
            h.ctl.close(code);
        }
    }
}

impl Deliver for Sessions {
    fn deliver(&self, events: &[InboxEvent]) {
        for ev in events {
            let Some(h) = self.map.get(&ev.agent) else {
                continue;
            };
            match h.tx.try_send(Box::new(ev.clone())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // The events stay in the inbox; the agent resumes from its last ack.
                    metrics::counter!("nexus_slow_consumers_total").increment(1);
                    tracing::info!(agent_id = %ev.agent, "slow consumer: closing its socket");
                    h.ctl.close(close::SLOW_CONSUMER);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

/// An event to route; `data` is any JSON object the event type allows.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventType,
    pub data: serde_json::Value,
    pub trace_id: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Emitted {
    pub event_id: EventId,
    pub seq: Seq,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct TenantEmitted {
    pub event_id: EventId,
    pub agents: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Append(#[from] AppendError),
}

pub struct Hub {
    store: Store,
    inbox: Inbox,
    sessions: Arc<Sessions>,
    presence: Arc<dyn Presence>,
}

impl Hub {
    pub fn new(
        store: Store,
        inbox: Inbox,
        sessions: Arc<Sessions>,
        presence: Arc<dyn Presence>,
    ) -> Hub {
        Hub {
            store,
            inbox,
            sessions,
            presence,
        }
    }

    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    pub fn presence(&self) -> &Arc<dyn Presence> {
        &self.presence
    }

    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Appends the event to the agent's inbox, then pushes it if the agent is connected.
    /// With an idempotency key, a repeat returns the first event instead of a new one.
    pub async fn emit_to_agent(
        &self,
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
            ..inbox_template(event_id, &event)
        };
        let stored = self.inbox.append(vec![row]).await;
        match stored {
            Ok(stored) => {
                let seq = stored.first().map_or(Seq::ZERO, |e| e.seq);
                Ok(Emitted { event_id, seq })
            }
            // Two requests with one key raced past the check: answer with the winner.
            Err(AppendError::Store(e)) if matches!(*e, StoreError::Conflict(_)) => {
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

    /// Emits `event` (which carries an idempotency key) to each of `agents` once, in one
    /// append. Meant for keys that are new almost always (a webhook's first processing):
    /// it skips the per-agent lookup, and only when the key turns out to exist already
    /// (a retried job) does it fall back to [`Hub::emit_to_agent`] agent by agent.
    pub async fn emit_once(&self, agents: &[AgentId], event: NewEvent) -> Result<(), EmitError> {
        if agents.is_empty() {
            return Ok(());
        }
        let template = NewInboxEvent {
            idempotency_key: event.idempotency_key.clone(),
            ..inbox_template(EventId::new_v7(), &event)
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
            Err(AppendError::Store(e)) if matches!(*e, StoreError::Conflict(_)) => {
                for agent in agents {
                    self.emit_to_agent(*agent, event.clone()).await?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Appends one event (one id) to every active agent of the tenant, in one transaction.
    pub async fn emit_to_tenant(
        &self,
        tenant: TenantId,
        event: NewEvent,
    ) -> Result<TenantEmitted, EmitError> {
        let agents = self.store.list_agents(tenant).await?;
        let event_id = EventId::new_v7();
        let template = inbox_template(event_id, &event);
        let batch: Vec<NewInboxEvent> = agents
            .iter()
            .filter(|a| a.status == AgentStatus::Active)
            .map(|a| NewInboxEvent {
                agent: a.id,
                ..template.clone()
            })
            .collect();
        let n = batch.len();
        if n > 0 {
            self.inbox.append(batch).await?;
        }
        Ok(TenantEmitted {
            event_id,
            agents: n,
        })
    }

    pub fn online_agents(&self, tenant: TenantId) -> Vec<PresenceEntry> {
        self.presence.online(tenant)
    }
}

/// The stored form of `e` for one agent. Serialized once and shared by every copy.
fn inbox_template(event_id: EventId, e: &NewEvent) -> NewInboxEvent {
    NewInboxEvent {
        agent: AgentId::from_uuid(uuid::Uuid::nil()),
        event_id,
        kind: e.kind,
        data: e.data.to_string().into(),
        trace_id: e.trace_id.as_deref().map(Into::into),
        idempotency_key: None,
    }
}
