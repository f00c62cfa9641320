//! Agents polling their inbox over HTTP (`GET /api/agents/me/inbox?wait=`): one
//! [`Notify`] per agent with a waiting poll, woken after each commit for that agent on
//! this node. A wake-up costs a map lookup; the poll then reads the inbox once.

use std::sync::Arc;

use dashmap::DashMap;
use nexus_proto::AgentId;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

#[derive(Default)]
pub struct Pollers {
    map: DashMap<AgentId, Arc<Notify>>,
}

impl Pollers {
    /// Registers a waiting poll of `agent` until the returned watch is dropped.
    pub fn watch(self: &Arc<Self>, agent: AgentId) -> InboxWatch {
        let notify = self.map.entry(agent).or_default().clone();
        InboxWatch {
            pollers: self.clone(),
            agent,
            notify,
        }
    }

    /// Whether a poll of `agent` waits here.
    pub fn polling(&self, agent: AgentId) -> bool {
        self.map.contains_key(&agent)
    }

    /// Wakes every poll of `agent` waiting here; nothing when there is none.
    pub fn wake(&self, agent: AgentId) {
        if let Some(n) = self.map.get(&agent) {
            n.notify_waiters();
        }
    }

    /// Wakes every poll waiting here (a tenant-wide event: polls do not say their tenant).
    pub fn wake_all(&self) {
        self.map.iter().for_each(|n| n.notify_waiters());
    }
}

/// One waiting poll's registration.
pub struct InboxWatch {
    pollers: Arc<Pollers>,
    agent: AgentId,
    notify: Arc<Notify>,
}

impl InboxWatch {
    /// Completes at the next commit for the agent after this call (not after its first
    /// poll): call it, then read the inbox, then await it, and no commit between the
    /// read and the wait is missed.
    pub fn changed(&self) -> Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for InboxWatch {
    fn drop(&mut self) {
        // Two holders (the map and this watch) means this was the agent's last poll.
        // Checked under the shard's lock, where new watches clone it.
        self.pollers
            .map
            .remove_if(&self.agent, |_, n| Arc::strong_count(n) <= 2);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_wake_after_the_watch_was_created_is_not_missed() {
        let pollers = Arc::new(Pollers::default());
        let a = AgentId::new_v7();
        let watch = pollers.watch(a);
        let changed = watch.changed();
        pollers.wake(a);
        tokio::time::timeout(Duration::from_secs(1), changed)
            .await
            .expect("woken");
    }

    #[test]
    fn the_entry_goes_with_the_last_watch() {
        let pollers = Arc::new(Pollers::default());
        let a = AgentId::new_v7();
        let first = pollers.watch(a);
        let second = pollers.watch(a);
        drop(first);
        assert_eq!(pollers.map.len(), 1);
        drop(second);
        assert!(pollers.map.is_empty());
    }
}
