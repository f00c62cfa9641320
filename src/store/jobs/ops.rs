//! What operators do with jobs (API and CLI): look, list, replay, delete, count.

use std::collections::BTreeMap;

use nexus_proto::TenantId;
use serde::Serialize;
use uuid::Uuid;

use super::{Attempt, COLS, Job, JobRow, JobStatus};
use crate::store::audit::insert_audit;
use crate::store::dialect::{can_match, on_pool, on_writer};
use crate::store::{NewAudit, Result, Store, StoreError};

/// Filters for listing and bulk replay; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub source: Option<String>,
    pub kind: Option<String>,
    pub tenant: Option<TenantId>,
}

impl JobFilter {
    /// Whether any stored job can match (see [`can_match`]).
    fn can_match(&self) -> bool {
        [&self.source, &self.kind]
            .into_iter()
            .flatten()
            .all(|text| can_match(text))
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// Jobs per status.
    #[schema(value_type = BTreeMap<String, i64>)]
    pub counts: BTreeMap<&'static str, i64>,
    /// Seconds the oldest queued job has waited; 0 when none is queued.
    pub oldest_queued_age_s: f64,
    /// Finished jobs by reason (`unmapped`, `no_processor`, dead-letter codes…).
    pub reasons: BTreeMap<String, i64>,
}

/// `AND`-ed filter conditions over `$first..`; the values are bound in this order:
/// status, source, kind, tenant.
fn filter_sql(first: usize) -> String {
    format!(
        "(${a} IS NULL OR status = ${a}) AND (${b} IS NULL OR source = ${b}) \
         AND (${c} IS NULL OR kind = ${c}) AND (${d} IS NULL OR tenant_id = ${d})",
        a = first,
        b = first + 1,
        c = first + 2,
        d = first + 3
    )
}

impl Store {
    pub async fn get_job(&self, id: Uuid) -> Result<(Job, Vec<Attempt>)> {
        let sql = format!("SELECT {COLS} FROM jobs WHERE id = $1");
        let row: Option<JobRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await
        })?;
        let job = Job::try_from(row.ok_or(StoreError::NotFound("job"))?)?;
        let attempts: Vec<(i64, String, i64)> = on_pool!(self, p => {
            sqlx::query_as("SELECT attempt, error, at FROM job_attempts WHERE job_id = $1 ORDER BY attempt")
                .bind(id)
                .fetch_all(p)
                .await
        })?;
        let attempts = attempts
            .into_iter()
            .map(|(attempt, error, at)| Attempt {
                attempt: attempt.max(0) as u32,
                error,
                at,
            })
            .collect();
        Ok((job, attempts))
    }

    /// Newest first; `before` is the last id of the previous page. Ids are UUIDv7, so
    /// jobs accepted while paging land before the first page and never shift later ones.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        if !filter.can_match() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLS} FROM jobs WHERE {} AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6",
            filter_sql(1)
        );
        let rows: Vec<JobRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(filter.status.map(JobStatus::as_str))
                .bind(filter.source.clone())
                .bind(filter.kind.clone())
                .bind(filter.tenant.map(|t| *t.as_uuid()))
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })?;
        rows.into_iter().map(Job::try_from).collect()
    }

    /// Puts finished (dead or done) jobs matching `filter` (and `id`, if given) back in
    /// the queue with fresh attempts. Returns how many.
    pub async fn replay_jobs(&self, filter: &JobFilter, id: Option<Uuid>, now: i64) -> Result<u64> {
        if !filter.can_match() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $6, finished_at = NULL, reason_code = NULL, \
             lease_owner = NULL, lease_until = NULL \
             WHERE status IN ('dead', 'done') AND {} AND ($5 IS NULL OR id = $5)",
            filter_sql(1)
        );
        let n = on_writer!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(filter.status.map(JobStatus::as_str))
                .bind(filter.source.clone())
                .bind(filter.kind.clone())
                .bind(filter.tenant.map(|t| *t.as_uuid()))
                .bind(id)
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Cancels a queued job (it never runs), recording `audit` in the same transaction;
    /// false when the job is not queued (running, finished or gone).
    pub async fn cancel_job(&self, id: Uuid, now: i64, audit: &NewAudit) -> Result<bool> {
        let n = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE jobs SET status = 'cancelled', reason_code = 'cancelled', finished_at = $2 \
                 WHERE id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                insert_audit!(&mut *tx, audit)?;
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Moves a queued job's next run to `run_at`, recording `audit` in the same
    /// transaction; false when the job is not queued.
    pub async fn reschedule_job(&self, id: Uuid, run_at: i64, audit: &NewAudit) -> Result<bool> {
        let n = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE jobs SET run_at = $2 WHERE id = $1 AND status = 'queued'")
                .bind(id)
                .bind(run_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                insert_audit!(&mut *tx, audit)?;
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Makes a queued job dead at once with `reason` (a suspended tenant's webhook):
    /// it stays visible and replayable, and never runs unless replayed.
    pub async fn bury_job(&self, id: Uuid, reason: &str, message: &str, now: i64) -> Result<()> {
        on_writer!(self, p => {
            sqlx::query(
                "UPDATE jobs SET status = 'dead', reason_code = $2, last_error = $3, finished_at = $4 \
                 WHERE id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(reason.to_owned())
            .bind(message.to_owned())
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Deletes a job that is not running; `NotFound` otherwise.
    pub async fn delete_job(&self, id: Uuid) -> Result<()> {
        let n = on_writer!(self, p => {
            sqlx::query("DELETE FROM jobs WHERE id = $1 AND status <> 'running'")
                .bind(id)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::NotFound("job (or it is running)"));
        }
        Ok(())
    }

    pub async fn queue_stats(&self, tenant: Option<TenantId>, now: i64) -> Result<QueueStats> {
        let t = tenant.map(|t| *t.as_uuid());
        let counts: Vec<(String, i64)> = on_pool!(self, p => {
            sqlx::query_as("SELECT status, COUNT(*) FROM jobs WHERE ($1 IS NULL OR tenant_id = $1) GROUP BY status")
                .bind(t)
                .fetch_all(p)
                .await
        })?;
        let oldest: Option<i64> = on_pool!(self, p => {
            sqlx::query_scalar("SELECT MIN(created_at) FROM jobs WHERE status = 'queued' AND ($1 IS NULL OR tenant_id = $1)")
                .bind(t)
                .fetch_one(p)
                .await
        })?;
        let reasons: Vec<(String, i64)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT reason_code, COUNT(*) FROM jobs WHERE reason_code IS NOT NULL \
                 AND ($1 IS NULL OR tenant_id = $1) GROUP BY reason_code",
            )
            .bind(t)
            .fetch_all(p)
            .await
        })?;
        let mut by_status: BTreeMap<&'static str, i64> =
            JobStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for (status, n) in counts {
            if let Some(slot) = JobStatus::ALL.iter().find(|s| s.as_str() == status) {
                by_status.insert(slot.as_str(), n);
            }
        }
        Ok(QueueStats {
            counts: by_status,
            oldest_queued_age_s: oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
            reasons: reasons.into_iter().collect(),
        })
    }
}
