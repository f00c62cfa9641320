//! Workers and the lease sweeper.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{Notify, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use super::{JobError, Processor};
use crate::config::QueueOpts;
use crate::group_commit::{Commit, GroupCommit, SubmitError};
use crate::store::{Enqueued, Failed, Job, JobStatus, NewJob, Store, StoreError};
use crate::telemetry::catalog;
use crate::time::Clock;

/// What happened to a job after one attempt; published for tests and live views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub job_id: Uuid,
    pub kind: String,
    /// `Done`, `Queued` (will retry) or `Dead`.
    pub status: JobStatus,
    pub reason: Option<String>,
    pub error: Option<String>,
}

/// Most jobs committed in one accept transaction.
const MAX_ACCEPT_BATCH: usize = 512;

pub struct Queue {
    store: Store,
    clock: Arc<dyn Clock>,
    opts: QueueOpts,
    node_id: String,
    wake: Arc<Notify>,
    outcomes: broadcast::Sender<JobOutcome>,
    /// Set by [`Queue::start`], which runs the accept writer.
    accepts: OnceLock<GroupCommit<Accepts>>,
}

/// Jobs accepted on the node (webhooks, tool requests), committed together; a new job
/// wakes the claimer.
struct Accepts {
    store: Store,
    wake: Arc<Notify>,
}

impl Commit for Accepts {
    type Item = NewJob;
    type Output = Enqueued;

    fn rows(_: &NewJob) -> usize {
        1
    }

    async fn commit(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, StoreError> {
        let results = self.store.enqueue_batch(jobs.to_vec()).await?;
        if results.iter().any(|r| matches!(r, Enqueued::Created(_))) {
            self.wake.notify_one();
        }
        Ok(results)
    }
}

impl Queue {
    pub fn new(store: Store, clock: Arc<dyn Clock>, opts: QueueOpts, node_id: String) -> Queue {
        Queue {
            store,
            clock,
            opts,
            node_id,
            wake: Arc::new(Notify::new()),
            outcomes: broadcast::channel(1024).0,
            accepts: OnceLock::new(),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Attempts a job of `kind` gets: its `--queue-max-attempts-for`, else the default.
    pub fn max_attempts(&self, kind: &str) -> u32 {
        self.opts
            .max_attempts_for
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(self.opts.max_attempts, |(_, n)| *n)
            .max(1)
    }

    /// Commits the job (or finds its duplicate) and wakes a worker. Concurrent calls
    /// share one transaction: durability costs one commit per batch, not per webhook.
    pub async fn enqueue(&self, mut job: NewJob) -> Result<Enqueued, SubmitError> {
        job.run_at = job.run_at.max(self.clock.now_ms());
        let accepts = self.accepts.get().ok_or(SubmitError::Stopped)?;
        accepts.submit(job).await
    }

    /// Makes the claimer look for due jobs now (after replay, or a clock change in tests).
    pub fn wake_claimer(&self) {
        self.wake.notify_one();
    }

    pub fn subscribe(&self) -> broadcast::Receiver<JobOutcome> {
        self.outcomes.subscribe()
    }

    /// Starts the claimer, the lease sweeper and the gauges; they end when `stop` fires,
    /// each running job after finishing. An accept waits at most `accept_bound` for its
    /// commit (then [`SubmitError::TimedOut`]: the sender is answered 503).
    pub fn start(
        self: &Arc<Self>,
        processor: Arc<dyn Processor>,
        accept_bound: Duration,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) {
        let accepts = Accepts {
            store: self.store.clone(),
            wake: self.wake.clone(),
        };
        let writer = GroupCommit::start(
            accepts,
            MAX_ACCEPT_BATCH,
            8_192,
            accept_bound,
            tracker,
            stop.clone(),
        );
        let _ = self.accepts.set(writer);
        tracker.spawn(self.clone().claim(processor, tracker.clone(), stop.clone()));
        tracker.spawn(self.clone().sweep(stop.clone()));
        tracker.spawn(super::gauges::run(
            self.store.clone(),
            self.clock.clone(),
            self.opts.stale_after,
            stop,
        ));
    }

    /// One claimer per node takes due jobs for all free workers in one query and runs
    /// each as its own task. (A claim per idle worker on every new job cost 16 writes
    /// per webhook at low rates, on SQLite's single writer.)
    async fn claim(
        self: Arc<Self>,
        processor: Arc<dyn Processor>,
        tracker: TaskTracker,
        stop: CancellationToken,
    ) {
        let workers = Arc::new(Semaphore::new(self.opts.workers.max(1)));
        let mut batch: u64 = 0;
        loop {
            let first = tokio::select! {
                permit = workers.clone().acquire_owned() => permit,
                _ = stop.cancelled() => return,
            };
            let Ok(first) = first else { return };
            let mut free = vec![first];
            while let Ok(p) = workers.clone().try_acquire_owned() {
                free.push(p);
            }
            let wanted = free.len();
            // Each claim has its own lease owner, so an attempt whose lease expired and
            // was claimed again here can't record a result over the newer attempt.
            batch += 1;
            let owner: Arc<str> = format!("{}/{batch}", self.node_id).into();
            let asked = Instant::now();
            let lease_ms = self.opts.lease.as_millis() as i64;
            let claimed = match self
                .store
                .claim_jobs(&owner, self.clock.now_ms(), lease_ms, wanted as u32)
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed");
                    Vec::new()
                }
            };
            let all_taken = claimed.len() == wanted;
            for (job, permit) in claimed.into_iter().zip(free.drain(..)) {
                let span = tracing::info_span!(
                    "job",
                    job_id = %job.id,
                    kind = %job.kind,
                    attempt = job.attempts,
                    trace_id = job.trace_id.as_deref().unwrap_or("-"),
                );
                let (queue, processor, owner) = (self.clone(), processor.clone(), owner.clone());
                tracker.spawn(
                    async move {
                        queue.run(&*processor, &owner, asked, job).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            drop(free);
            if all_taken {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.opts.poll) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Runs one claimed attempt; `claimed` is when the claim was asked for (its lease
    /// runs from no earlier than that).
    async fn run(&self, processor: &dyn Processor, owner: &str, claimed: Instant, job: Job) {
        let started = Instant::now();
        // Its own task, so a panicking processor costs one attempt, not a worker.
        let mut task = tokio::spawn(processor.process(job.clone()));
        let renew = self.renew_lease(job.id, owner, claimed);
        let result = tokio::select! {
            joined = &mut task => joined.unwrap_or_else(|e| Err(JobError::transient(format!("processor failed: {e}")))),
            () = renew => {
                // Another worker may run the job now: this attempt must not go on
                // writing (a write it began is an unfinished side effect for the next).
                task.abort();
                Err(JobError::transient("lease lost: the job may run on another worker"))
            }
        };
        metrics::histogram!(catalog::JOB_SECONDS, "kind" => job.kind.clone())
            .record(started.elapsed().as_secs_f64());
        let now = self.clock.now_ms();
        let outcome = match result {
            Ok(done) => {
                tracing::debug!(reason = done.reason, "job done");
                let reason = done.reason.map(str::to_owned);
                self.finish(
                    self.store
                        .complete_job(job.id, owner, done.reason, now)
                        .await,
                );
                JobOutcome {
                    job_id: job.id,
                    kind: job.kind,
                    status: JobStatus::Done,
                    reason,
                    error: None,
                }
            }
            Err(e) => self.failed(job, owner, e, now).await,
        };
        let _ = self.outcomes.send(outcome);
    }

    async fn failed(&self, job: Job, owner: &str, e: JobError, now: i64) -> JobOutcome {
        let message = e.to_string();
        let (status, reason, failed) = match &e {
            JobError::Later { after_ms, .. } => (
                JobStatus::Queued,
                None,
                Failed::Wait(now + *after_ms as i64),
            ),
            JobError::Transient { retry_after_ms, .. } if job.attempts < job.max_attempts => {
                let delay = self.backoff(job.attempts).max(retry_after_ms.unwrap_or(0));
                (JobStatus::Queued, None, Failed::Retry(now + delay as i64))
            }
            JobError::Transient { .. } => (
                JobStatus::Dead,
                Some("retries_exhausted"),
                Failed::Dead("retries_exhausted"),
            ),
            JobError::Permanent { reason, .. } => {
                (JobStatus::Dead, Some(*reason), Failed::Dead(reason))
            }
        };
        if matches!(e, JobError::Later { .. }) {
            tracing::debug!(job_id = %job.id, kind = %job.kind, reason = %message, "job waits");
        } else {
            // A wait (`Later`) spends no attempt and is no failure.
            metrics::counter!(catalog::JOB_FAILURES, "kind" => job.kind.clone()).increment(1);
            if status == JobStatus::Dead {
                metrics::counter!(catalog::JOBS_DEAD, "kind" => job.kind.clone()).increment(1);
            }
            tracing::warn!(job_id = %job.id, kind = %job.kind, attempt = job.attempts, error = %message, status = status.as_str(), "job attempt failed");
        }
        let stored = self
            .store
            .fail_job(job.id, owner, &message, failed, now)
            .await;
        self.finish(stored);
        JobOutcome {
            job_id: job.id,
            kind: job.kind,
            status,
            reason: reason.map(str::to_owned),
            error: Some(message),
        }
    }

    fn finish(&self, stored: Result<bool, StoreError>) {
        match stored {
            Ok(true) => {}
            // The sweeper took the job back: another attempt will run it.
            Ok(false) => tracing::warn!("job result not recorded: its lease had expired"),
            Err(e) => {
                tracing::warn!(error = %e, "recording a job result failed; the lease will expire and it will run again")
            }
        }
    }

    /// Exponential backoff with jitter: base·2^(attempt−1), capped, then a random
    /// point in its upper half so retries of many jobs don't stampede together.
    fn backoff(&self, attempt: u32) -> u64 {
        let base = self.opts.backoff_base.as_millis() as u64;
        let cap = self.opts.backoff_max.as_millis() as u64;
        let full = base
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
            .min(cap);
        full / 2 + rand::rng().random_range(0..=full / 2)
    }

    /// Keeps renewing the lease; resolves when it is lost: taken back, or not confirmed
    /// before it would run out (the database unreachable), when the sweeper of another
    /// node may hand the job to someone else.
    async fn renew_lease(&self, id: Uuid, owner: &str, claimed: Instant) {
        let lease = self.opts.lease;
        let lease_ms = lease.as_millis() as i64;
        let mut held_until = claimed + lease;
        loop {
            tokio::time::sleep(lease / 3).await;
            let asked = Instant::now();
            let renewed = tokio::time::timeout_at(
                held_until.into(),
                self.store.renew_lease(id, owner, lease_ms),
            );
            match renewed.await {
                Ok(Ok(true)) => held_until = asked + lease,
                Ok(Ok(false)) => return,
                Ok(Err(e)) if Instant::now() + lease / 3 < held_until => {
                    tracing::warn!(error = %e, "lease renewal failed; retrying");
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "lease renewal failed until the lease ran out");
                    return;
                }
                Err(_) => {
                    tracing::warn!("lease renewal did not answer before the lease ran out");
                    return;
                }
            }
        }
    }

    async fn sweep(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.opts.lease / 2) => {}
                _ = stop.cancelled() => return,
            }
            self.sweep_once().await;
        }
    }

    /// Returns expired leases to the queue now; the sweeper calls it periodically.
    pub async fn sweep_once(&self) -> u64 {
        match self.store.sweep_expired_leases(self.clock.now_ms()).await {
            Ok(0) => 0,
            Ok(n) => {
                tracing::warn!(jobs = n, "returned jobs whose worker died mid-lease");
                self.wake_claimer();
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease sweep failed");
                0
            }
        }
    }
}
