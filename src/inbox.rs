//! Batched writes to the durable inbox, and what happens right after a commit.
//!
//! Every append goes through one group-commit writer per node: it takes whatever
//! requests are queued, commits them in one transaction, then hands the stored events to
//! the [`Deliver`] sink in commit order (so sessions see each agent's seqs in order) and
//! only then answers the callers. Acks are batched too (the newest per agent wins).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nexus_proto::{AgentId, Seq, TenantId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::group_commit::{Commit, GroupCommit, SubmitError};
use crate::store::{
    InboxEvent, LogEvent, NewInboxEvent, NewLogEvent, Retention, Store, StoreError,
};
use crate::telemetry::catalog;

/// Where committed events go next: the sessions of this node (and, in a cluster, other nodes).
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, events: &[InboxEvent]);
}

/// Most events one transaction takes; a larger request still commits whole.
const MAX_BATCH: usize = 2_000;
const ACK_FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The handle the rest of the node appends and acks through. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    appends: GroupCommit<Appends>,
    acks: mpsc::Sender<(AgentId, Seq)>,
    store: Store,
    retention: Retention,
    bound: Duration,
}

impl Inbox {
    /// Starts the writer tasks on `tracker`. An append waits at most `bound` for its
    /// commit ([`SubmitError::TimedOut`] after). When `stop` is cancelled they write
    /// what is already queued and end; later appends fail with [`SubmitError::Stopped`].
    pub fn start(
        store: Store,
        retention: Retention,
        sink: Arc<dyn Deliver>,
        bound: Duration,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> Inbox {
        let appends = Appends {
            store: store.clone(),
            retention,
            sink,
        };
        let appends = GroupCommit::start(appends, MAX_BATCH, 4_096, bound, tracker, stop.clone());
        let (acks, ack_rx) = mpsc::channel(16_384);
        tracker.spawn(write_acks(store.clone(), ack_rx, stop.clone()));
        tracker.spawn(checkpoint(store.clone(), stop.clone()));
        tracker.spawn(sweep_expired(store.clone(), retention, stop));
        Inbox {
            appends,
            acks,
            store,
            retention,
            bound,
        }
    }

    /// Appends durably; returns once committed (and handed to the sessions).
    pub async fn append(&self, events: Vec<NewInboxEvent>) -> Result<Vec<InboxEvent>, SubmitError> {
        self.appends.submit(events).await
    }

    /// Appends tenant-wide events to the tenant's log (stored once, however many agents
    /// read them): one transaction, waited on at most the writer's bound.
    pub async fn append_log(
        &self,
        tenant: TenantId,
        events: &[NewLogEvent],
        ttl_ms: i64,
    ) -> Result<Vec<LogEvent>, SubmitError> {
        let append = self
            .store
            .append_tenant_log(tenant, events, ttl_ms, self.retention.cap);
        match tokio::time::timeout(self.bound, append).await {
            Ok(Ok(stored)) => {
                metrics::counter!(catalog::INBOX_APPENDED).increment(stored.len() as u64);
                Ok(stored)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "tenant log append failed");
                metrics::counter!(catalog::DATABASE_ERRORS).increment(1);
                Err(SubmitError::Store(Arc::new(e)))
            }
            Err(_) => Err(SubmitError::TimedOut(self.bound)),
        }
    }

    /// Records a cumulative ack; written within ~100 ms. Losing it in a crash only
    /// means the agent gets those events again.
    pub async fn ack(&self, agent: AgentId, seq: Seq) {
        let _ = self.acks.send((agent, seq)).await;
    }
}

/// Appends from every caller on the node, committed together, then handed to the sink
/// in commit order (before the callers hear back).
struct Appends {
    store: Store,
    retention: Retention,
    sink: Arc<dyn Deliver>,
}

impl Commit for Appends {
    type Item = Vec<NewInboxEvent>;
    type Output = Vec<InboxEvent>;

    fn rows(events: &Vec<NewInboxEvent>) -> usize {
        events.len()
    }

    async fn commit(
        &self,
        requests: &[Vec<NewInboxEvent>],
    ) -> Result<Vec<Vec<InboxEvent>>, StoreError> {
        let events: Vec<NewInboxEvent> = requests.iter().flatten().cloned().collect();
        let started = std::time::Instant::now();
        let stored = match self.store.append_inbox(&events, self.retention).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, "inbox append failed");
                metrics::counter!(catalog::DATABASE_ERRORS).increment(1);
                return Err(e);
            }
        };
        metrics::histogram!(catalog::INBOX_BATCH_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::counter!(catalog::INBOX_APPENDED).increment(stored.len() as u64);
        self.sink.deliver(&stored);
        let mut stored = stored.into_iter();
        Ok(requests
            .iter()
            .map(|req| stored.by_ref().take(req.len()).collect())
            .collect())
    }
}

async fn write_acks(store: Store, mut rx: mpsc::Receiver<(AgentId, Seq)>, stop: CancellationToken) {
    let mut pending: HashMap<AgentId, Seq> = HashMap::new();
    let mut tick = tokio::time::interval(ACK_FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let record = |pending: &mut HashMap<AgentId, Seq>, (agent, seq): (AgentId, Seq)| {
        let slot = pending.entry(agent).or_insert(seq);
        *slot = (*slot).max(seq);
    };
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(ack) => record(&mut pending, ack),
                None => break,
            },
            _ = tick.tick(), if !pending.is_empty() => flush_acks(&store, &mut pending).await,
            _ = stop.cancelled() => break,
        }
    }
    while let Ok(ack) = rx.try_recv() {
        record(&mut pending, ack);
    }
    flush_acks(&store, &mut pending).await;
}

async fn checkpoint(store: Store, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "checkpoint failed");
        }
    }
}

/// Deletes expired events a chunk at a time, so retention never holds a long lock; and,
/// past the same age, the record of what Nexus wrote to Slack and ClickUp and of the
/// writes it began (webhook echoes and retries need them for minutes, replays of dead
/// letters for days); and the audit log past its own retention.
async fn sweep_expired(store: Store, retention: Retention, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = crate::time::now_ms();
        drain("inbox", |limit| store.delete_expired_inbox(now, limit)).await;
        drain("tenant log", |limit| {
            store.delete_expired_tenant_log(now, limit)
        })
        .await;
        // Next months' session partitions, made well before their first row.
        if let Err(e) = store.ensure_session_partitions(now).await {
            tracing::warn!(error = %e, "session partitions not checked");
        }
        let before = now.saturating_sub(retention.ttl_ms);
        drain("provider writes", |limit| {
            store.delete_old_provider_writes(before, limit)
        })
        .await;
        drain("side effects", |limit| {
            store.delete_old_effects(before, limit)
        })
        .await;
        if let Some(ttl) = retention.session_ttl_ms {
            let before = now.saturating_sub(ttl);
            if let Err(e) = store.drop_old_session_partitions(before).await {
                tracing::warn!(error = %e, "old session partitions not dropped");
            }
            drain("sessions", |limit| store.delete_old_sessions(before, limit)).await;
        }
        let audit_before = now.saturating_sub(retention.audit_ttl_ms);
        drain("audit log", |limit| {
            store.delete_old_audit(audit_before, limit)
        })
        .await;
    }
}

/// Runs `delete` with a chunk limit until it deletes less than a chunk.
async fn drain<F, Fut>(what: &str, delete: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    const CHUNK: u32 = 5_000;
    loop {
        match delete(CHUNK).await {
            Ok(n) if n == u64::from(CHUNK) => continue,
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(deleted = n, what, "retention");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, what, "retention sweep failed");
                return;
            }
        }
    }
}

async fn flush_acks(store: &Store, pending: &mut HashMap<AgentId, Seq>) {
    let acks: Vec<(AgentId, Seq)> = pending.drain().collect();
    if let Err(e) = store.save_acks(&acks).await {
        // Keep them for the next tick; a newer ack for the same agent supersedes.
        tracing::warn!(error = %e, acks = acks.len(), "saving acks failed; will retry");
        for (agent, seq) in acks {
            let slot = pending.entry(agent).or_insert(seq);
            *slot = (*slot).max(seq);
        }
    }
}
