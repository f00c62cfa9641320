//! The job queue's table: accept with dedupe, claim with a lease, finish, retry,
//! dead-letter; what operators do with it (list, replay, stats) is in [`ops`]. Workers
//! and retry policy live in `crate::queue`.

mod ops;

pub use ops::{JobFilter, QueueStats};

use nexus_proto::TenantId;
use serde::Serialize;
use uuid::Uuid;

use super::dialect::{self, on_writer};
use super::{Result, Store, StoreError};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Dead,
    /// An operator cancelled it while it was queued: it never runs.
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
            JobStatus::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("job status {s:?}")))
    }
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub tenant_id: TenantId,
    pub source_id: Option<Uuid>,
    /// The source kind (`slack`, `clickup`, `ingest`) or an internal producer.
    pub source: String,
    pub kind: String,
    pub dedupe_key: String,
    pub payload: String,
    pub trace_id: Option<String>,
    pub max_attempts: u32,
    pub run_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Created(Uuid),
    /// Another job already has this (source, dedupe key).
    Duplicate(Uuid),
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub source_id: Option<Uuid>,
    pub source: String,
    pub kind: String,
    pub status: JobStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    pub dedupe_key: String,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub run_at: i64,
    pub last_error: Option<String>,
    pub reason_code: Option<String>,
    pub trace_id: Option<String>,
    #[serde(skip)]
    pub payload: String,
    #[serde(skip)]
    pub lease_owner: Option<String>,
}

impl Job {
    /// This attempt, as the holder of what it writes (a job read outside a claim holds
    /// nothing: its empty owner matches no lease).
    pub fn holder(&self) -> super::Holder<'_> {
        super::Holder {
            job_id: self.id,
            lease_owner: self.lease_owner.as_deref().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub attempt: u32,
    pub error: String,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
}

/// A `jobs` row as read by [`COLS`]; counts are `BIGINT` in both backends.
#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    tenant_id: Uuid,
    source_id: Option<Uuid>,
    source: String,
    kind: String,
    status: String,
    attempts: i64,
    max_attempts: i64,
    dedupe_key: String,
    created_at: i64,
    run_at: i64,
    last_error: Option<String>,
    reason_code: Option<String>,
    trace_id: Option<String>,
    payload: String,
    lease_owner: Option<String>,
}

const COLS: &str = "id, tenant_id, source_id, source, kind, status, attempts, max_attempts, dedupe_key, \
                    created_at, run_at, last_error, reason_code, trace_id, payload, lease_owner";

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Job> {
        Ok(Job {
            id: r.id,
            tenant_id: TenantId::from_uuid(r.tenant_id),
            source_id: r.source_id,
            source: r.source,
            kind: r.kind,
            status: JobStatus::parse(&r.status)?,
            attempts: r.attempts.max(0) as u32,
            max_attempts: r.max_attempts.max(0) as u32,
            dedupe_key: r.dedupe_key,
            created_at: r.created_at,
            run_at: r.run_at,
            last_error: r.last_error,
            reason_code: r.reason_code,
            trace_id: r.trace_id,
            payload: r.payload,
            lease_owner: r.lease_owner,
        })
    }
}

impl Store {
    /// Inserts each job unless its (source, dedupe key) exists, all in one transaction
    /// (group commit: one durable write for many webhooks). The check is the unique
    /// index itself, so concurrent retries of one webhook make exactly one job.
    #[tracing::instrument(level = "debug", skip_all, fields(jobs = jobs.len()))]
    pub async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let now = crate::time::now_ms();
        let out = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let mut out = Vec::with_capacity(jobs.len());
            for job in jobs {
                let id = Uuid::now_v7();
                let inserted: Option<Uuid> = sqlx::query_scalar(
                    "INSERT INTO jobs (id, tenant_id, source_id, source, kind, dedupe_key, payload, status, attempts, \
                     max_attempts, run_at, trace_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $9, $10, $11) \
                     ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id",
                )
                .bind(id)
                .bind(*job.tenant_id.as_uuid())
                .bind(job.source_id)
                .bind(job.source.clone())
                .bind(job.kind)
                .bind(job.dedupe_key.clone())
                .bind(job.payload)
                .bind(i64::from(job.max_attempts))
                .bind(job.run_at)
                .bind(job.trace_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let result = match inserted {
                    Some(id) => Enqueued::Created(id),
                    None => {
                        let existing: Option<Uuid> =
                            sqlx::query_scalar("SELECT id FROM jobs WHERE source = $1 AND dedupe_key = $2")
                                .bind(job.source)
                                .bind(job.dedupe_key)
                                .fetch_optional(&mut *tx)
                                .await?;
                        Enqueued::Duplicate(existing.unwrap_or(id))
                    }
                };
                out.push(result);
            }
            tx.commit().await?;
            out
        });
        Ok(out)
    }

    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let mut done = self.enqueue_batch(vec![job]).await?;
        done.pop().ok_or(StoreError::NotFound("job"))
    }

    /// Leases up to `limit` jobs due by `due_at` to `owner` for `lease_ms` by the
    /// database's clock, counting an attempt.
    #[tracing::instrument(level = "debug", skip(self, due_at, lease_ms))]
    pub async fn claim_jobs(
        &self,
        owner: &str,
        due_at: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let lock = dialect::skip_locked(self.backend());
        let now = dialect::now_ms(self.backend());
        // A literal LIMIT, as in `read_inbox`: a bound one recompiles on every call.
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $1, \
             lease_until = {now} + $2 \
             WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $3 \
                          ORDER BY run_at, id LIMIT {limit} {lock}) \
             RETURNING {COLS}"
        );
        let rows: Vec<JobRow> = on_writer!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(owner.to_owned())
                .bind(lease_ms)
                .bind(due_at)
                .fetch_all(p)
                .await
        })?;
        let mut jobs = rows
            .into_iter()
            .map(Job::try_from)
            .collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    /// Extends the lease of a job this owner still holds to `lease_ms` from now (the
    /// database's clock); false when it was lost.
    pub async fn renew_lease(&self, id: Uuid, owner: &str, lease_ms: i64) -> Result<bool> {
        let sql = format!(
            "UPDATE jobs SET lease_until = {} + $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
            dialect::now_ms(self.backend())
        );
        let n = on_writer!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lease_ms)
                .bind(id)
                .bind(owner.to_owned())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Marks the job done (with an optional reason such as `unmapped`).
    pub async fn complete_job(
        &self,
        id: Uuid,
        owner: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let n = on_writer!(self, p => {
            sqlx::query(
                "UPDATE jobs SET status = 'done', reason_code = $1, finished_at = $2, lease_owner = NULL, \
                 lease_until = NULL WHERE id = $3 AND lease_owner = $4 AND status = 'running'",
            )
            .bind(reason.map(str::to_owned))
            .bind(now)
            .bind(id)
            .bind(owner.to_owned())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Records an attempt that did not finish the job: see [`Failed`].
    pub async fn fail_job(
        &self,
        id: Uuid,
        owner: &str,
        error: &str,
        failed: Failed,
        now: i64,
    ) -> Result<bool> {
        let n = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let n = match failed {
                Failed::Retry(at) | Failed::Wait(at) => sqlx::query(
                    "UPDATE jobs SET status = 'queued', run_at = $1, last_error = $2, lease_owner = NULL, \
                     lease_until = NULL, attempts = attempts - $3 \
                     WHERE id = $4 AND lease_owner = $5 AND status = 'running'",
                )
                .bind(at)
                .bind(error.to_owned())
                .bind(i64::from(matches!(failed, Failed::Wait(_))))
                .bind(id)
                .bind(owner.to_owned())
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                Failed::Dead(reason) => sqlx::query(
                    "UPDATE jobs SET status = 'dead', last_error = $1, reason_code = $2, finished_at = $3, \
                     lease_owner = NULL, lease_until = NULL WHERE id = $4 AND lease_owner = $5 AND status = 'running'",
                )
                .bind(error.to_owned())
                .bind(reason.to_owned())
                .bind(now)
                .bind(id)
                .bind(owner.to_owned())
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            };
            if n == 1 && !matches!(failed, Failed::Wait(_)) {
                sqlx::query(
                    "INSERT INTO job_attempts (job_id, attempt, error, at) \
                     SELECT id, attempts, $1, $2 FROM jobs WHERE id = $3 \
                     ON CONFLICT (job_id, attempt) DO NOTHING",
                )
                .bind(error.to_owned())
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    /// Returns jobs whose lease expired by the database's clock (their worker died or
    /// lost touch with the database) to the queue, due at once. The lost attempt counts,
    /// but it never dead-letters a job by itself: the last word is an attempt that ran to
    /// its end — unless the job's workers died twice its budget of times (a job that
    /// kills its node), which is dead-lettered `lease_expired`. Returns how many.
    pub async fn sweep_expired_leases(&self, now: i64) -> Result<u64> {
        let db_now = dialect::now_ms(self.backend());
        let log = format!(
            "INSERT INTO job_attempts (job_id, attempt, error, at) \
             SELECT id, attempts, 'lease expired: the worker stopped mid-job', $1 FROM jobs \
             WHERE status = 'running' AND lease_until < {db_now} ON CONFLICT (job_id, attempt) DO NOTHING"
        );
        let requeue = format!(
            "UPDATE jobs SET \
               status = CASE WHEN attempts >= 2 * max_attempts THEN 'dead' ELSE 'queued' END, \
               reason_code = CASE WHEN attempts >= 2 * max_attempts THEN 'lease_expired' ELSE reason_code END, \
               finished_at = CASE WHEN attempts >= 2 * max_attempts THEN $1 ELSE NULL END, \
               last_error = 'lease expired: the worker stopped mid-job', \
               run_at = $1, lease_owner = NULL, lease_until = NULL \
             WHERE status = 'running' AND lease_until < {db_now}"
        );
        let n = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(log))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let n = sqlx::query(sqlx::AssertSqlSafe(requeue))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n)
    }
}

/// How an attempt that did not finish its job is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// It failed: run again at this time; the attempt counts.
    Retry(i64),
    /// It could not start yet (another worker holds what it needs): run again at this
    /// time without spending an attempt, and nothing goes in the attempt log.
    Wait(i64),
    /// Dead letters, with this reason.
    Dead(&'static str),
}
