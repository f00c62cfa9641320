//! Batched writes to the durable inbox, and what happens right after a commit.
//!
//! Every append goes through one writer task per node: it drains whatever requests
//! are queued, commits them in one transaction, then hands the stored events to the
//! [`Deliver`] sink in commit order (so sessions see each agent's seqs in order) and
//! only then answers the callers. Acks are batched the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nexus_proto::{AgentId, Seq};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::{InboxEvent, NewInboxEvent, Retention, Store, StoreError};

/// Where committed events go next: the sessions of this node (and, in a cluster, other nodes).
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, events: &[InboxEvent]);
}

/// Most events one transaction takes; a larger request still commits whole.
const MAX_BATCH: usize = 2_000;
const ACK_FLUSH_EVERY: Duration = Duration::from_millis(100);

struct AppendRequest {
    events: Vec<NewInboxEvent>,
    done: oneshot::Sender<Result<Vec<InboxEvent>, Arc<StoreError>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error("the inbox writer has stopped")]
    Stopped,
}

/// The handle the rest of the node appends and acks through. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    appends: mpsc::Sender<AppendRequest>,
    acks: mpsc::Sender<(AgentId, Seq)>,
}

impl Inbox {
    /// Starts the writer tasks on `tracker`. When `stop` is cancelled they write what
    /// is already queued and end; later appends fail with [`AppendError::Stopped`].
    pub fn start(
        store: Store,
        retention: Retention,
        sink: Arc<dyn Deliver>,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> Inbox {
        let (appends, append_rx) = mpsc::channel(4_096);
        let (acks, ack_rx) = mpsc::channel(16_384);
        tracker.spawn(write_appends(
            store.clone(),
            retention,
            sink,
            append_rx,
            stop.clone(),
        ));
        tracker.spawn(write_acks(store.clone(), ack_rx, stop.clone()));
        tracker.spawn(checkpoint(store.clone(), stop.clone()));
        tracker.spawn(sweep_expired(store, retention.ttl_ms, stop));
        Inbox { appends, acks }
    }

    /// Appends durably; returns once committed (and handed to the sessions).
    pub async fn append(&self, events: Vec<NewInboxEvent>) -> Result<Vec<InboxEvent>, AppendError> {
        let (done, answer) = oneshot::channel();
        self.appends
            .send(AppendRequest { events, done })
            .await
            .map_err(|_| AppendError::Stopped)?;
        answer
            .await
            .map_err(|_| AppendError::Stopped)?
            .map_err(AppendError::Store)
    }

    /// Records a cumulative ack; written within ~100 ms. Losing it in a crash only
    /// means the agent gets those events again.
    pub async fn ack(&self, agent: AgentId, seq: Seq) {
        let _ = self.acks.send((agent, seq)).await;
    }
}

async fn write_appends(
    store: Store,
    retention: Retention,
    sink: Arc<dyn Deliver>,
    mut rx: mpsc::Receiver<AppendRequest>,
    stop: CancellationToken,
) {
    let mut batch: Vec<AppendRequest> = Vec::new();
    loop {
        let first = tokio::select! {
            req = rx.recv() => req,
            // Stopping: take only what is already queued.
            _ = stop.cancelled() => rx.try_recv().ok(),
        };
        let Some(first) = first else { break };
        let mut rows = first.events.len();
        batch.push(first);
        while rows < MAX_BATCH {
            match rx.try_recv() {
                Ok(req) => {
                    rows += req.events.len();
                    batch.push(req);
                }
                Err(_) => break,
            }
        }
        let events: Vec<NewInboxEvent> = batch
            .iter()
            .flat_map(|r| r.events.iter().cloned())
            .collect();
        match commit(&store, &events, retention, sink.as_ref()).await {
            Ok(stored) => answer(batch.drain(..), stored),
            // One bad request (an agent deleted meanwhile, a racing idempotency key)
            // must not fail the others that shared its transaction: retry them alone.
            Err(e) if batch.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
                for req in batch.drain(..) {
                    match commit(&store, &req.events, retention, sink.as_ref()).await {
                        Ok(stored) => answer(std::iter::once(req), stored),
                        Err(e) => fail(std::iter::once(req), e),
                    }
                }
            }
            Err(e) => fail(batch.drain(..), e),
        }
    }
}

async fn commit(
    store: &Store,
    events: &[NewInboxEvent],
    retention: Retention,
    sink: &dyn Deliver,
) -> Result<Vec<InboxEvent>, StoreError> {
    let started = std::time::Instant::now();
    let stored = store.append_inbox(events, retention).await?;
    metrics::histogram!("nexus_inbox_batch_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("nexus_inbox_appended_total").increment(stored.len() as u64);
    sink.deliver(&stored);
    Ok(stored)
}

fn answer(requests: impl Iterator<Item = AppendRequest>, stored: Vec<InboxEvent>) {
    let mut stored = stored.into_iter();
    for req in requests {
        let mine: Vec<InboxEvent> = stored.by_ref().take(req.events.len()).collect();
        let _ = req.done.send(Ok(mine));
    }
}

fn fail(requests: impl Iterator<Item = AppendRequest>, e: StoreError) {
    tracing::warn!(error = %e, "inbox append failed");
    metrics::counter!("nexus_database_errors_total").increment(1);
    let e = Arc::new(e);
    for req in requests {
        let _ = req.done.send(Err(e.clone()));
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
/// past the same age, the record of what Nexus wrote to Slack and ClickUp (webhook echoes
/// and tool retries need it for minutes, not days).
async fn sweep_expired(store: Store, ttl_ms: i64, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = crate::time::now_ms();
        drain("inbox", |limit| store.delete_expired_inbox(now, limit)).await;
        let before = now.saturating_sub(ttl_ms);
        drain("provider writes", |limit| {
            store.delete_old_provider_writes(before, limit)
        })
        .await;
    }
}

/// Runs `delete` with a chunk limit until it deletes less than a chunk.
async fn drain<F, Fut>(what: &str, delete: F)
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<u64, crate::store::StoreError>>,
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
