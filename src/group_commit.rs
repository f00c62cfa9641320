//! Group commit: one writer task takes whatever requests are waiting, commits them in one
//! transaction and answers each caller, so durability costs one commit per batch, not
//! one per request. The inbox's appends and the queue's job acceptance both write so.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::StoreError;
use crate::telemetry::catalog;

/// What one writer commits.
pub trait Commit: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;

    /// Rows `item` adds to a batch; a batch stops taking requests at the writer's
    /// `max_rows` (a larger request still commits whole).
    fn rows(item: &Self::Item) -> usize;

    /// Commits `items` in one transaction: one output per item, in their order.
    fn commit(
        &self,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Output>, StoreError>> + Send;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// No answer within the writer's bound: the database hangs. The outcome is unknown —
    /// a commit under way may still land — so callers answer "retry later" (503), never
    /// success; a retry is harmless because every accepted item carries a dedupe key.
    #[error("storage did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the writer has stopped")]
    Stopped,
}

type Answer<C> = oneshot::Sender<Result<<C as Commit>::Output, SubmitError>>;

/// The handle requests are submitted through. Cheap to clone.
pub struct GroupCommit<C: Commit> {
    requests: mpsc::Sender<(C::Item, Answer<C>)>,
    bound: Duration,
}

impl<C: Commit> Clone for GroupCommit<C> {
    fn clone(&self) -> Self {
        GroupCommit {
            requests: self.requests.clone(),
            bound: self.bound,
        }
    }
}

impl<C: Commit> GroupCommit<C> {
    /// Starts the writer on `tracker`. A caller waits at most `bound` for its answer,
    /// queueing included, and a batch whose commit takes longer is given up so the
    /// writer goes on with the next. When `stop` is cancelled it commits what is
    /// already queued and ends; later submissions fail with [`SubmitError::Stopped`].
    pub fn start(
        committer: C,
        max_rows: usize,
        capacity: usize,
        bound: Duration,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> GroupCommit<C> {
        let (requests, rx) = mpsc::channel(capacity);
        tracker.spawn(write(committer, max_rows, bound, rx, stop));
        GroupCommit { requests, bound }
    }

    /// Returns once `item` is committed (with whatever shared its transaction), or
    /// [`SubmitError::TimedOut`] once the bound has passed.
    pub async fn submit(&self, item: C::Item) -> Result<C::Output, SubmitError> {
        let (done, answer) = oneshot::channel();
        let wait = async {
            self.requests
                .send((item, done))
                .await
                .map_err(|_| SubmitError::Stopped)?;
            answer.await.map_err(|_| SubmitError::Stopped)?
        };
        tokio::time::timeout(self.bound, wait)
            .await
            .unwrap_or(Err(SubmitError::TimedOut(self.bound)))
    }
}

async fn write<C: Commit>(
    committer: C,
    max_rows: usize,
    bound: Duration,
    mut rx: mpsc::Receiver<(C::Item, Answer<C>)>,
    stop: CancellationToken,
) {
    let (mut items, mut answers) = (Vec::new(), Vec::new());
    loop {
        let first = tokio::select! {
            req = rx.recv() => req,
            // Stopping: commit only what is already queued.
            _ = stop.cancelled() => rx.try_recv().ok(),
        };
        let Some(first) = first else { break };
        let mut rows = 0;
        let mut next = Some(first);
        while let Some((item, done)) = next {
            // Its caller's deadline passed while it queued: it was answered 503, and
            // committing it now would only add work to a database already behind.
            if !done.is_closed() {
                rows += C::rows(&item);
                items.push(item);
                answers.push(done);
            }
            next = if rows < max_rows {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !items.is_empty() {
            commit_batch(&committer, bound, &items, &mut answers).await;
        }
        items.clear();
    }
}

/// Commits one batch within `bound` and answers its callers.
async fn commit_batch<C: Commit>(
    committer: &C,
    bound: Duration,
    items: &[C::Item],
    answers: &mut Vec<Answer<C>>,
) {
    let committed = match tokio::time::timeout(bound, committer.commit(items)).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                items = items.len(),
                ?bound,
                "commit did not finish in time; answering retry later"
            );
            metrics::counter!(catalog::DATABASE_TIMEOUTS, "what" => "group_commit").increment(1);
            for done in answers.drain(..) {
                let _ = done.send(Err(SubmitError::TimedOut(bound)));
            }
            return;
        }
    };
    match committed {
        Ok(outputs) => {
            for (done, out) in answers.drain(..).zip(outputs) {
                let _ = done.send(Ok(out));
            }
        }
        // One bad request (an agent deleted meanwhile, a racing key) must not fail
        // the others that shared its transaction: retry each alone.
        Err(e) if items.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
            let mut hung = false;
            for (item, done) in items.iter().zip(answers.drain(..)) {
                // Once one hangs, the database does: the rest are not tried.
                let one = committer.commit(std::slice::from_ref(item));
                let out = match (hung, done.is_closed()) {
                    (true, _) => Err(SubmitError::TimedOut(bound)),
                    (false, true) => continue,
                    (false, false) => match tokio::time::timeout(bound, one).await {
                        Ok(Ok(mut out)) => out.pop().ok_or_else(|| {
                            SubmitError::Store(Arc::new(StoreError::NotFound("row")))
                        }),
                        Ok(Err(e)) => Err(SubmitError::Store(Arc::new(e))),
                        Err(_) => {
                            hung = true;
                            Err(SubmitError::TimedOut(bound))
                        }
                    },
                };
                let _ = done.send(out);
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for done in answers.drain(..) {
                let _ = done.send(Err(SubmitError::Store(e.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// Doubles numbers; a negative one fails whatever transaction it is in, and a
    /// transaction holding 0 never finishes (a database that stopped answering).
    #[derive(Default)]
    struct Doubler {
        batches: Arc<Mutex<Vec<usize>>>,
    }

    impl Commit for Doubler {
        type Item = i32;
        type Output = i32;

        fn rows(_: &i32) -> usize {
            1
        }

        async fn commit(&self, items: &[i32]) -> Result<Vec<i32>, StoreError> {
            self.batches.lock().expect("lock").push(items.len());
            if items.contains(&0) {
                std::future::pending::<()>().await;
            }
            if items.iter().any(|i| *i < 0) {
                return Err(StoreError::Conflict("negative"));
            }
            Ok(items.iter().map(|i| i * 2).collect())
        }
    }

    #[tokio::test]
    async fn waiting_requests_share_a_commit_and_a_bad_one_fails_alone() {
        let doubler = Doubler::default();
        let batches = doubler.batches.clone();
        let tracker = TaskTracker::new();
        let writer =
            GroupCommit::start(doubler, 100, 64, SECOND, &tracker, CancellationToken::new());
        // On this single-threaded runtime all five are queued before the writer runs.
        let results =
            futures_util::future::join_all([1, 2, -3, 4, 5].map(|i| writer.submit(i))).await;
        let got: Vec<Option<i32>> = results.into_iter().map(Result::ok).collect();
        assert_eq!(got, [Some(2), Some(4), None, Some(8), Some(10)]);
        assert_eq!(*batches.lock().expect("lock"), [5, 1, 1, 1, 1, 1]);
    }

    #[tokio::test]
    async fn a_stopped_writer_refuses_new_requests() {
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        let writer =
            GroupCommit::start(Doubler::default(), 100, 64, SECOND, &tracker, stop.clone());
        assert_eq!(writer.submit(21).await.ok(), Some(42));
        stop.cancel();
        tracker.close();
        tracker.wait().await;
        assert!(matches!(writer.submit(1).await, Err(SubmitError::Stopped)));
    }

    // Paused time: the bounds expire by the runtime's clock, so a loaded machine cannot
    // make the request queued behind the hang miss its own bound.
    #[tokio::test(start_paused = true)]
    async fn a_hung_commit_answers_its_batch_and_those_queued_behind_it_in_time() {
        let bound = Duration::from_millis(300);
        let doubler = Doubler::default();
        let batches = doubler.batches.clone();
        let tracker = TaskTracker::new();
        let writer =
            GroupCommit::start(doubler, 100, 64, bound, &tracker, CancellationToken::new());
        let hung = tokio::spawn({
            let writer = writer.clone();
            async move { writer.submit(0).await }
        });
        // Queued once the writer is stuck on the batch holding 0.
        let deadline = tokio::time::Instant::now() + SECOND;
        while batches.lock().expect("lock").is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the writer never started"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let queued = tokio::time::Instant::now();
        let behind = writer.submit(5).await;
        // Answered within its own bound (plus scheduling margin), not after the hang.
        assert!(queued.elapsed() < bound + Duration::from_millis(500));
        assert_eq!(behind.ok(), Some(10));
        let hung = hung.await.expect("join");
        assert!(matches!(hung, Err(SubmitError::TimedOut(_))), "{hung:?}");
        // The writer gave the hung batch up and goes on with later ones.
        assert_eq!(writer.submit(21).await.ok(), Some(42));
    }
}
