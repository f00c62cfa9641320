//! Operator actions on the queue, shared by `nexus jobs …` and `/api/jobs`.

use serde::Serialize;
use uuid::Uuid;

use super::Queue;
use crate::store::{Attempt, Job, JobFilter, QueueStats, Store, StoreError};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: Job,
    pub payload: serde_json::Value,
    pub attempts_log: Vec<Attempt>,
}

/// Up to `limit` jobs after `cursor`, newest first. One more is read to know whether
/// another page follows, so the last page says so (`next_cursor: null`).
pub async fn list(
    store: &Store,
    filter: &JobFilter,
    cursor: Option<Uuid>,
    limit: u32,
) -> Result<JobPage, StoreError> {
    let mut jobs = store
        .list_jobs(filter, cursor, limit.saturating_add(1))
        .await?;
    let more = jobs.len() > limit as usize;
    jobs.truncate(limit as usize);
    let next_cursor = jobs.last().map(|j| j.id).filter(|_| more);
    Ok(JobPage { jobs, next_cursor })
}

pub async fn show(store: &Store, id: Uuid) -> Result<JobDetail, StoreError> {
    let (job, attempts_log) = store.get_job(id).await?;
    let mut payload = serde_json::from_str(&job.payload)
        .unwrap_or(serde_json::Value::String(job.payload.clone()));
    // Slack's legacy verification token, in bodies stored before intake dropped it.
    if let (serde_json::Value::Object(body), "slack") = (&mut payload, job.source.as_str()) {
        body.remove("token");
    }
    Ok(JobDetail {
        job,
        payload,
        attempts_log,
    })
}

/// Replays finished jobs (one by id, or all matching the filter) at `now`; returns how
/// many. A node's idle workers find them within their poll interval, or at once when
/// `queue` (this node's) is given.
pub async fn replay(
    store: &Store,
    queue: Option<&Queue>,
    filter: &JobFilter,
    id: Option<Uuid>,
) -> Result<u64, StoreError> {
    let now = queue.map_or_else(crate::time::now_ms, |q| q.clock().now_ms());
    let n = store.replay_jobs(filter, id, now).await?;
    if let Some(q) = queue.filter(|_| n > 0) {
        q.wake_claimer();
    }
    Ok(n)
}

pub async fn stats(store: &Store, filter: &JobFilter, now: i64) -> Result<QueueStats, StoreError> {
    store.queue_stats(filter.tenant, now).await
}
