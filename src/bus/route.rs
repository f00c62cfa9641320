//! After a commit: push to this node's sessions, and tell the nodes holding the other
//! agents (one message per node per round, not per event). Plus the node's upkeep:
//! presence maintenance, and the reconcile that makes a lost message cost a moment,
//! never an agent waiting for its next reconnect.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nexus_proto::{AgentId, Seq, close};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::sessions::Sessions;
use crate::broker::{Broker, NodeMsg};
use crate::inbox::Deliver;
use crate::presence::{Presence, Stale};
use crate::store::{InboxEvent, Store};

/// Wait after a failed Redis round before the next.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The inbox writer's post-commit hook. Never waits: local sessions get the events
/// through their bounded queues, and agents held elsewhere are merged into `pending`
/// (at most one entry per agent) for the router task.
pub struct Fanout {
    sessions: Arc<Sessions>,
    pending: Mutex<HashMap<AgentId, Seq>>,
    wake: Notify,
}

impl Fanout {
    pub fn new(sessions: Arc<Sessions>) -> Fanout {
        Fanout {
            sessions,
            pending: Mutex::default(),
            wake: Notify::new(),
        }
    }

    fn merge(&self, items: impl IntoIterator<Item = (AgentId, Seq)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (agent, seq) in items {
            let slot = pending.entry(agent).or_insert(seq);
            *slot = (*slot).max(seq);
        }
        drop(pending);
        self.wake.notify_one();
    }

    fn take(&self) -> HashMap<AgentId, Seq> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Deliver for Fanout {
    fn deliver(&self, events: &[InboxEvent]) {
        let elsewhere: Vec<(AgentId, Seq)> = events
            .iter()
            .filter(|ev| !self.sessions.push(ev))
            .map(|ev| (ev.agent, ev.seq))
            .collect();
        if !elsewhere.is_empty() {
            self.merge(elsewhere);
        }
    }
}

/// What the background tasks share.
#[derive(Clone)]
pub struct Upkeep {
    pub node_id: String,
    pub store: Store,
    pub sessions: Arc<Sessions>,
    pub presence: Arc<dyn Presence>,
    pub broker: Arc<dyn Broker>,
    /// Live sessions are compared with their inboxes at least this often.
    pub reconcile_every: Duration,
}

impl Upkeep {
    /// Closes `stale` wherever it is.
    pub async fn close(&self, stale: Stale, code: u16) {
        if stale.node_id == self.node_id {
            self.sessions.close(stale.agent_id, stale.session_id, code);
            return;
        }
        let msg = NodeMsg::Close {
            agent: stale.agent_id,
            session: stale.session_id,
            code,
        };
        if let Err(e) = self.broker.publish(&stale.node_id, &msg).await {
            // Its node reconciles presence on the next maintenance round and finds
            // the session superseded.
            tracing::warn!(error = %e, agent_id = %stale.agent_id, node_id = stale.node_id, "could not ask a node to close a superseded session");
        }
    }

    /// Routes agents with new commits to the nodes holding them, round after round.
    pub async fn route(self, fanout: Arc<Fanout>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = fanout.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
            let batch = fanout.take();
            if batch.is_empty() {
                continue;
            }
            if let Err(unsent) = self.route_once(&batch).await {
                fanout.merge(unsent);
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }

    /// Returns what could not be sent, to be tried again.
    async fn route_once(&self, batch: &HashMap<AgentId, Seq>) -> Result<(), Vec<(AgentId, Seq)>> {
        let agents: Vec<AgentId> = batch.keys().copied().collect();
        let located = match self.presence.locate(&agents).await {
            Ok(located) => located,
            Err(e) => {
                tracing::warn!(error = %e, agents = agents.len(), "cannot locate agents; will retry");
                return Err(batch.iter().map(|(a, s)| (*a, *s)).collect());
            }
        };
        let mut by_node: HashMap<String, Vec<(AgentId, Seq)>> = HashMap::new();
        for (agent, node) in located {
            if let Some(seq) = batch.get(&agent) {
                by_node.entry(node).or_default().push((agent, *seq));
            }
        }
        let mut unsent = Vec::new();
        for (node, list) in by_node {
            if node == self.node_id {
                // Connected here after the commit looked: it reads the inbox anyway.
                list.iter().for_each(|(a, s)| self.sessions.wake(*a, *s));
                continue;
            }
            let msg = NodeMsg::Committed(list);
            if let Err(e) = self.broker.publish(&node, &msg).await {
                tracing::warn!(error = %e, node_id = node, "cannot tell a node about new events; will retry");
                if let NodeMsg::Committed(list) = msg {
                    unsent.extend(list);
                }
            }
        }
        if unsent.is_empty() {
            Ok(())
        } else {
            Err(unsent)
        }
    }

    /// Presence upkeep every `maintain_every`; sessions found superseded are closed.
    pub async fn maintain(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.presence.maintain_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            match self.presence.maintain().await {
                Ok(stale) => {
                    for s in stale {
                        self.close(s, close::SUPERSEDED).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "presence maintenance failed; will retry"),
            }
        }
    }

    /// Compares every live session's last sent seq with its inbox and wakes those
    /// behind, and closes the sessions of agents disabled or deleted meanwhile (4003), of
    /// suspended tenants (4011) or whose token was revoked (4001): after each (re)subscribe, and every `reconcile_every`.
    pub async fn reconcile(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.reconcile_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.sessions.reconcile.notified() => {}
                _ = stop.cancelled() => return,
            }
            let live = self.sessions.snapshot();
            if live.is_empty() {
                continue;
            }
            let agents: Vec<AgentId> = live.iter().map(|(a, _)| *a).collect();
            match self.store.live_states(&agents).await {
                Ok(states) => {
                    let found: HashSet<AgentId> = states.iter().map(|s| s.agent).collect();
                    for gone in agents.iter().filter(|a| !found.contains(a)) {
                        // Deleted (with its tenant) by another process or node.
                        self.sessions.close_agent(*gone, close::AGENT_DISABLED);
                    }
                    for s in states {
                        if s.suspended {
                            self.sessions.close_agent(s.agent, close::TENANT_SUSPENDED);
                        } else if s.active {
                            self.sessions
                                .close_if_revoked(s.agent, s.tokens_valid_after);
                            self.sessions.wake(s.agent, s.committed);
                        } else {
                            // Disabled by another process (the CLI) or node.
                            self.sessions.close_agent(s.agent, close::AGENT_DISABLED);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reconcile could not read cursors"),
            }
        }
    }
}
