//! Group commit: one writer task takes whatever requests are waiting, commits them in one
//! transaction and answers each caller, so durability costs one commit per batch, not
//! one per request. The inbox's appends and the queue's job acceptance both write so.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::StoreError;

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

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Store(Arc<StoreError>),
    #[error("the writer has stopped")]
    Stopped,
}

type Answer<C> = oneshot::Sender<Result<<C as Commit>::Output, Arc<StoreError>>>;

/// The handle requests are submitted through. Cheap to clone.
pub struct GroupCommit<C: Commit> {
    requests: mpsc::Sender<(C::Item, Answer<C>)>,
}

impl<C: Commit> Clone for GroupCommit<C> {
    fn clone(&self) -> Self {
        GroupCommit {
            requests: self.requests.clone(),
        }
    }
}

impl<C: Commit> GroupCommit<C> {
    /// Starts the writer on `tracker`. When `stop` is cancelled it commits what is
    /// already queued and ends; later submissions fail with [`SubmitError::Stopped`].
    pub fn start(
        committer: C,
        max_rows: usize,
        capacity: usize,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> GroupCommit<C> {
        let (requests, rx) = mpsc::channel(capacity);
        tracker.spawn(write(committer, max_rows, rx, stop));
        GroupCommit { requests }
    }

    /// Returns once `item` is committed (with whatever shared its transaction).
    pub async fn submit(&self, item: C::Item) -> Result<C::Output, SubmitError> {
        let (done, answer) = oneshot::channel();
        self.requests
            .send((item, done))
            .await
            .map_err(|_| SubmitError::Stopped)?;
        answer
            .await
            .map_err(|_| SubmitError::Stopped)?
            .map_err(SubmitError::Store)
    }
}

async fn write<C: Commit>(
    committer: C,
    max_rows: usize,
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
        let Some((item, done)) = first else { break };
        let mut rows = C::rows(&item);
        items.push(item);
        answers.push(done);
        while rows < max_rows {
            let Ok((item, done)) = rx.try_recv() else {
                break;
            };
            rows += C::rows(&item);
            items.push(item);
            answers.push(done);
        }
        match committer.commit(&items).await {
            Ok(outputs) => {
                for (done, out) in answers.drain(..).zip(outputs) {
                    let _ = done.send(Ok(out));
                }
            }
            // One bad request (an agent deleted meanwhile, a racing key) must not fail
            // the others that shared its transaction: retry each alone.
            Err(e) if items.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
                for (item, done) in items.iter().zip(answers.drain(..)) {
                    let one = committer.commit(std::slice::from_ref(item)).await;
                    let out = one.and_then(|mut out| out.pop().ok_or(StoreError::NotFound("row")));
                    let _ = done.send(out.map_err(Arc::new));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for done in answers.drain(..) {
                    let _ = done.send(Err(e.clone()));
                }
            }
        }
        items.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Doubles numbers; a negative one fails whatever transaction it is in.
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
        let writer = GroupCommit::start(doubler, 100, 64, &tracker, CancellationToken::new());
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
        let writer = GroupCommit::start(Doubler::default(), 100, 64, &tracker, stop.clone());
        assert_eq!(writer.submit(21).await.ok(), Some(42));
        stop.cancel();
        tracker.close();
        tracker.wait().await;
        assert!(matches!(writer.submit(1).await, Err(SubmitError::Stopped)));
    }
}
