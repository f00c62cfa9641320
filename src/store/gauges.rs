//! What the node's gauges read from the database: a few grouped queries per refresh,
//! whatever the number of jobs, agents or scrapes.

use nexus_proto::TenantId;
use uuid::Uuid;

use super::dialect::on_pool;
use super::inbox::HEAD_SEQ;
use super::{JobStatus, Result, Store};

/// The job queue by kind.
#[derive(Debug, Clone, Default)]
pub struct QueueGauges {
    /// Jobs per (kind, status); a pair with no job is absent.
    pub depth: Vec<(String, JobStatus, i64)>,
    /// Per kind with a due queued job: seconds the longest-waiting one has been due
    /// (past its `run_at`) without a worker taking it.
    pub oldest_due_s: Vec<(String, f64)>,
}

impl Store {
    pub async fn queue_gauges(&self, now: i64) -> Result<QueueGauges> {
        let counts: Vec<(String, String, i64)> = on_pool!(self, p => {
            sqlx::query_as("SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status")
                .fetch_all(p)
                .await
        })?;
        // Due, not created: a job waiting out a retry's backoff, or moved to a later
        // `run_at`, is not stale; one a worker should have taken is.
        let due: Vec<(String, i64)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT kind, MIN(run_at) FROM jobs WHERE status = 'queued' AND run_at <= $1 \
                 GROUP BY kind",
            )
            .bind(now)
            .fetch_all(p)
            .await
        })?;
        let depth = counts
            .into_iter()
            .filter_map(|(kind, status, n)| {
                let status = JobStatus::ALL.into_iter().find(|s| s.as_str() == status)?;
                Some((kind, status, n))
            })
            .collect();
        let oldest_due_s = due
            .into_iter()
            .map(|(kind, run_at)| (kind, (now - run_at).max(0) as f64 / 1000.0))
            .collect();
        Ok(QueueGauges {
            depth,
            oldest_due_s,
        })
    }

    /// Per tenant with active agents: the largest committed seq minus acked seq among
    /// them (an agent with no inbox yet counts 0). Disabled agents are left out: nobody
    /// will read their inboxes.
    pub async fn inbox_lag_by_tenant(&self) -> Result<Vec<(TenantId, i64)>> {
        let rows: Vec<(Uuid, i64)> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT a.tenant_id, COALESCE(MAX({HEAD_SEQ} - COALESCE(c.acked_seq, 0)), 0) \
                 FROM agents a JOIN tenants t ON t.id = a.tenant_id LEFT JOIN agent_cursors c ON c.agent_id = a.id \
                 WHERE a.status = 'active' GROUP BY a.tenant_id",
            )))
            .fetch_all(p)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(t, lag)| (TenantId::from_uuid(t), lag.max(0)))
            .collect())
    }
}
