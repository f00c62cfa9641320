//! Operator actions that change jobs: replay, delete, cancel, reschedule. Reading the
//! queue (list, show, stats) is `crate::queue::ops`'s.

use serde_json::json;
use uuid::Uuid;

use super::{Actor, AdminError};
use crate::queue::{Queue, ops};
use crate::store::{Job, JobFilter, Store};
use crate::time::now_ms;

/// Replays finished jobs (one by id, or all matching the filter); returns how many.
/// `queue` (this node's) is woken when given.
pub async fn replay_jobs(
    store: &Store,
    actor: &Actor,
    queue: Option<&Queue>,
    filter: &JobFilter,
    id: Option<Uuid>,
) -> Result<u64, AdminError> {
    let n = ops::replay(store, queue, filter, id).await?;
    if n > 0 {
        let target = id.map_or_else(|| "filter".to_owned(), |id| id.to_string());
        let details = json!({
            "replayed": n,
            "status": filter.status.map(|s| s.as_str()),
            "source": filter.source,
            "kind": filter.kind,
        });
        let audit = actor.audit(filter.tenant, "job.replay", target, details);
        store.record_audit(&audit).await?;
    }
    Ok(n)
}

/// Deletes a job that is not running.
pub async fn delete_job(store: &Store, actor: &Actor, job: &Job) -> Result<(), AdminError> {
    store.delete_job(job.id).await?;
    let details = json!({ "kind": job.kind, "status": job.status.as_str() });
    let audit = actor.audit(Some(job.tenant_id), "job.delete", job.id, details);
    Ok(store.record_audit(&audit).await?)
}

/// Cancels a queued job: it never runs. Any other job is a conflict naming its status.
pub async fn cancel_job(store: &Store, actor: &Actor, job: &Job) -> Result<Job, AdminError> {
    let audit = actor.audit(Some(job.tenant_id), "job.cancel", job.id, json!({}));
    if !store.cancel_job(job.id, now_ms(), &audit).await? {
        return Err(not_queued(store, job.id, "cancelled").await);
    }
    Ok(store.get_job(job.id).await?.0)
}

/// Moves a queued job's next run to `run_at` (Unix ms).
pub async fn reschedule_job(
    store: &Store,
    actor: &Actor,
    job: &Job,
    run_at: i64,
) -> Result<Job, AdminError> {
    let details = json!({ "run_at": crate::time::rfc3339(run_at) });
    let audit = actor.audit(Some(job.tenant_id), "job.reschedule", job.id, details);
    if !store.reschedule_job(job.id, run_at, &audit).await? {
        return Err(not_queued(store, job.id, "rescheduled").await);
    }
    Ok(store.get_job(job.id).await?.0)
}

/// Why a job could not be changed: its status now (it may have moved since it was read).
async fn not_queued(store: &Store, id: Uuid, what: &str) -> AdminError {
    match store.get_job(id).await {
        Ok((job, _)) => AdminError::Conflict(format!(
            "the job is {}; only a queued job can be {what}",
            job.status.as_str()
        )),
        Err(e) => e.into(),
    }
}
