//! Tenant-wide events to live sessions. The log entry is stored once; every node hears
//! "tenant T's log reached n" once, reads the new entries once, and works out each of
//! its sessions' seqs from one batch of cursor reads: no per-agent inbox rows, no
//! per-agent messages between nodes.
//!
//! A session whose cursor moved past the entries meanwhile (an own event appended after
//! them) gets a catch-up instead and reads its stream: the seq then comes from the
//! store, never a guess.

use std::collections::HashMap;

use nexus_proto::TenantId;
use tokio_util::sync::CancellationToken;

use super::route::Upkeep;
use crate::broker::NodeMsg;
use crate::store::StoreError;

/// Most entries pushed per tenant per round; a session further behind reads its stream.
const PUSH_AT_MOST: u32 = 256;

impl Upkeep {
    /// Tells every node (this one too) that `tenant`'s log reached `head`. A lost
    /// message costs a moment: the reconcile finds sessions behind their stream.
    pub async fn announce_log(&self, tenant: TenantId, head: u64) {
        let msg = NodeMsg::Logged { tenant, head };
        if let Err(e) = self.broker.publish_all(&msg).await {
            tracing::warn!(error = %e, tenant_id = %tenant, "cannot announce a tenant-wide event; sessions catch up at the next reconcile");
        }
    }

    /// Pushes new log entries to this node's sessions of their tenants, round after round.
    pub async fn push_logs(self, stop: CancellationToken) {
        // The newest entry each tenant had pushed here; older ones were pushed before
        // (or are read by the sessions that missed them).
        let mut pushed: HashMap<TenantId, u64> = HashMap::new();
        loop {
            tokio::select! {
                _ = self.sessions.log_grew.notified() => {}
                _ = stop.cancelled() => return,
            }
            for (tenant, head) in self.sessions.take_logged() {
                let from = pushed.get(&tenant).copied().unwrap_or(0);
                if head <= from {
                    continue;
                }
                let from = from.max(head.saturating_sub(u64::from(PUSH_AT_MOST)));
                if let Err(e) = self.push_log(tenant, from, head).await {
                    tracing::warn!(error = %e, tenant_id = %tenant, "cannot push a tenant-wide event; sessions catch up at the next reconcile");
                }
                pushed.insert(tenant, head);
            }
        }
    }

    /// Pushes entries `(from, head]` of `tenant`'s log to its sessions here.
    async fn push_log(&self, tenant: TenantId, from: u64, head: u64) -> Result<(), StoreError> {
        // HTTP polls do not say their tenant: wake them all, each reads once.
        self.sessions.pollers.wake_all();
        let agents = self.sessions.of_tenant(tenant);
        if agents.is_empty() {
            return Ok(());
        }
        let entries = self
            .store
            .read_tenant_log(tenant, from, head, PUSH_AT_MOST)
            .await?;
        for anchor in self.store.anchors(&agents).await? {
            for entry in &entries {
                match anchor.seq_of(entry.n) {
                    Some(seq) => self.sessions.push_entry(entry.for_agent(anchor.agent, seq)),
                    // An own event of the agent came after this entry: its seq is in
                    // the store, read it there.
                    None => {
                        self.sessions.catch_up(anchor.agent);
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}
