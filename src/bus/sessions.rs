//! This node's live sessions, one per agent, and how things reach them: committed
//! events pushed in process, wake-ups and closes sent by other nodes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use nexus_proto::{AgentId, Seq, SessionId, TenantId, close};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::pollers::Pollers;
use crate::broker::{NodeMsg, NodeSink};
use crate::store::InboxEvent;
use crate::telemetry::catalog;

/// What a session's outbound queue carries. Pointer-sized (the unit variant lives in
/// the box's niche): a channel allocates its first block of slots per session up front,
/// and this keeps that cheap for the many idle sockets.
pub enum Push {
    /// A committed event, straight from this node's inbox writer.
    Event(Box<InboxEvent>),
    /// More is committed than this session has sent: read it from the inbox.
    CatchUp,
}

/// How a session is told to close from outside (supersede, slow consumer, shutdown),
/// and what it has sent so far (so wake-ups for what it already has cost nothing).
#[derive(Default)]
pub struct SessionCtl {
    code: AtomicU16,
    sent: AtomicU64,
    /// When the session's current token was issued (Unix ms).
    token_issued: AtomicI64,
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

    /// The session's last sent seq; it reports every change.
    pub fn set_sent(&self, seq: Seq) {
        self.sent.store(seq.get(), Ordering::Release);
    }

    pub fn sent(&self) -> Seq {
        Seq::new(self.sent.load(Ordering::Acquire))
    }

    pub fn set_token_issued(&self, at_ms: i64) {
        self.token_issued.store(at_ms, Ordering::Release);
    }
}

pub struct SessionHandle {
    pub session_id: SessionId,
    pub tenant: TenantId,
    pub tx: mpsc::Sender<Push>,
    pub ctl: Arc<SessionCtl>,
}

#[derive(Default)]
pub struct Sessions {
    map: DashMap<AgentId, SessionHandle>,
    /// Set by [`NodeSink::resubscribed`]; the reconcile task waits on it.
    pub(super) reconcile: Notify,
    /// Agents' HTTP polls waiting here, woken like sockets after each commit.
    pub pollers: Arc<Pollers>,
    /// Tenants whose log grew, with its newest entry, for the log pusher.
    logged: Mutex<HashMap<TenantId, u64>>,
    pub(super) log_grew: Notify,
}

impl Sessions {
    /// Registers a session; an older session of the same agent here is closed with 4010.
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

    /// Closes whatever session of `agent` is here.
    pub fn close_agent(&self, agent: AgentId, code: u16) {
        if let Some(h) = self.map.get(&agent) {
            h.ctl.close(code);
        }
    }

    /// Closes the agent's session here with 4001 if its token was issued before
    /// `valid_after` (Unix ms): revoked tokens end their sessions too.
    pub fn close_if_revoked(&self, agent: AgentId, valid_after: i64) {
        if let Some(h) = self.map.get(&agent)
            && h.ctl.token_issued.load(Ordering::Acquire) < valid_after
        {
            h.ctl.close(close::TOKEN_EXPIRED);
        }
    }

    /// Closes `session` of `agent` if it is here.
    pub fn close(&self, agent: AgentId, session: SessionId, code: u16) {
        if let Some(h) = self.map.get(&agent)
            && h.session_id == session
        {
            h.ctl.close(code);
        }
    }

    /// Each live session with what it has sent, for the reconcile.
    pub fn snapshot(&self) -> Vec<(AgentId, Seq)> {
        self.map.iter().map(|h| (*h.key(), h.ctl.sent())).collect()
    }

    /// Hands a committed event to the agent's session here, and wakes its polls here;
    /// false if it has no session here.
    pub fn push(&self, ev: &InboxEvent) -> bool {
        self.pollers.wake(ev.agent);
        let Some(h) = self.map.get(&ev.agent) else {
            return false;
        };
        offer(&h, ev.agent, Push::Event(Box::new(ev.clone())));
        true
    }

    /// The agents of `tenant` with a session here.
    pub fn of_tenant(&self, tenant: TenantId) -> Vec<AgentId> {
        self.map
            .iter()
            .filter(|h| h.tenant == tenant)
            .map(|h| *h.key())
            .collect()
    }

    /// Hands a log entry, as `ev.agent` sees it, to that agent's session here.
    pub fn push_entry(&self, ev: InboxEvent) {
        if let Some(h) = self.map.get(&ev.agent) {
            offer(&h, ev.agent, Push::Event(Box::new(ev)));
        }
    }

    /// Notes that `tenant`'s log reached `head`; the log pusher takes it from here.
    pub fn logged(&self, tenant: TenantId, head: u64) {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        let slot = logged.entry(tenant).or_insert(head);
        *slot = (*slot).max(head);
        drop(logged);
        self.log_grew.notify_one();
    }

    pub(super) fn take_logged(&self) -> HashMap<TenantId, u64> {
        std::mem::take(&mut *self.logged.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Tells the agent's session here to read its stream.
    pub fn catch_up(&self, agent: AgentId) {
        if let Some(h) = self.map.get(&agent) {
            offer(&h, agent, Push::CatchUp);
        }
    }

    /// Tells the agent's session here that its inbox has entries up to `seq`.
    pub fn wake(&self, agent: AgentId, seq: Seq) {
        if let Some(h) = self.map.get(&agent)
            && h.ctl.sent() < seq
        {
            offer(&h, agent, Push::CatchUp);
        }
    }
}

fn offer(h: &SessionHandle, agent: AgentId, push: Push) {
    match h.tx.try_send(push) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            // The events stay in the inbox; the agent resumes from its last ack.
            metrics::counter!(catalog::SLOW_CONSUMERS).increment(1);
            tracing::info!(agent_id = %agent, "slow consumer: closing its socket");
            h.ctl.close(close::SLOW_CONSUMER);
        }
    }
}

impl NodeSink for Sessions {
    fn receive(&self, msg: NodeMsg) {
        match msg {
            NodeMsg::Committed(list) => {
                for (agent, seq) in list {
                    self.pollers.wake(agent);
                    self.wake(agent, seq);
                }
            }
            NodeMsg::Logged { tenant, head } => self.logged(tenant, head),
            NodeMsg::Close {
                agent,
                session,
                code,
            } => self.close(agent, session, code),
        }
    }

    fn resubscribed(&self) {
        self.reconcile.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_is_pointer_sized() {
        assert_eq!(std::mem::size_of::<Push>(), std::mem::size_of::<usize>());
    }
}
