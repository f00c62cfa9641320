//! Agent-host workers (`nexus worker`): the last health report of each worker, one row
//! per agent and host, replaced by every heartbeat. Rows go with their agent or tenant
//! (foreign keys, `ON DELETE CASCADE`).

use nexus_proto::{AgentId, TenantId};
use serde::Serialize;
use uuid::Uuid;

use super::dialect::{on_pool, on_writer};
use super::{Result, Store};

/// A heartbeat as the store keeps it (times in Unix ms).
#[derive(Debug, Clone)]
pub struct WorkerReport {
    pub agent_id: AgentId,
    pub tenant_id: TenantId,
    pub host: String,
    pub version: String,
    pub interval_s: u32,
    pub started_at: i64,
    pub last_scan_at: Option<i64>,
    pub last_upload_at: Option<i64>,
    pub sessions_seen: u64,
    pub uploaded: u64,
    pub queued: u64,
    pub failing: u64,
    pub parked: u64,
    pub consecutive_failures: u64,
    pub alert_after: u32,
    pub last_error: Option<String>,
    pub seen_at: i64,
}

/// A worker as operators see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Worker {
    pub agent_id: AgentId,
    pub agent_name: String,
    pub tenant_id: TenantId,
    pub host: String,
    pub version: String,
    pub interval_s: u32,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    #[serde(with = "crate::time::opt_ms_rfc3339")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_scan_at: Option<i64>,
    #[serde(with = "crate::time::opt_ms_rfc3339")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_upload_at: Option<i64>,
    pub sessions_seen: u64,
    pub uploaded: u64,
    pub queued: u64,
    pub failing: u64,
    pub parked: u64,
    pub consecutive_failures: u64,
    pub last_error: Option<String>,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub seen_at: i64,
    /// Not seen for more than 3 × `interval_s`.
    pub stale: bool,
}

/// Where a worker stood before a heartbeat: what decides whether a failure streak has
/// just reached its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStreak {
    pub consecutive_failures: u64,
    pub seen_at: i64,
}

/// Filters of [`Store::list_workers`]; `after` is the last (agent, host) of the previous page.
#[derive(Debug, Clone, Default)]
pub struct WorkerFilter {
    pub tenant: Option<TenantId>,
    pub agent: Option<AgentId>,
    pub after: Option<(AgentId, String)>,
    pub limit: u32,
}

#[derive(sqlx::FromRow)]
struct WorkerRow {
    agent_id: Uuid,
    agent_name: String,
    tenant_id: Uuid,
    host: String,
    version: String,
    interval_s: i64,
    started_at: i64,
    last_scan_at: Option<i64>,
    last_upload_at: Option<i64>,
    sessions_seen: i64,
    uploaded: i64,
    queued: i64,
    failing: i64,
    parked: i64,
    consecutive_failures: i64,
    last_error: Option<String>,
    seen_at: i64,
}

impl WorkerRow {
    fn into_worker(self, now_ms: i64) -> Worker {
        let count = |n: i64| n.max(0) as u64;
        let interval_s = u32::try_from(self.interval_s.max(0)).unwrap_or(u32::MAX);
        Worker {
            agent_id: AgentId::from_uuid(self.agent_id),
            agent_name: self.agent_name,
            tenant_id: TenantId::from_uuid(self.tenant_id),
            host: self.host,
            version: self.version,
            interval_s,
            started_at: self.started_at,
            last_scan_at: self.last_scan_at,
            last_upload_at: self.last_upload_at,
            sessions_seen: count(self.sessions_seen),
            uploaded: count(self.uploaded),
            queued: count(self.queued),
            failing: count(self.failing),
            parked: count(self.parked),
            consecutive_failures: count(self.consecutive_failures),
            last_error: self.last_error,
            seen_at: self.seen_at,
            stale: now_ms - self.seen_at > 3 * 1000 * i64::from(interval_s),
        }
    }
}

/// Counters past `i64::MAX` (never, in practice) are stored as `i64::MAX`.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// The worker's failure count and last heartbeat before this one, if it reported before.
    pub async fn worker_streak(&self, agent: AgentId, host: &str) -> Result<Option<WorkerStreak>> {
        let row: Option<(i64, i64)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT consecutive_failures, seen_at FROM workers WHERE agent_id = $1 AND host = $2",
            )
            .bind(*agent.as_uuid())
            .bind(host.to_owned())
            .fetch_optional(p)
            .await
        })?;
        Ok(row.map(|(failures, seen_at)| WorkerStreak {
            consecutive_failures: failures.max(0) as u64,
            seen_at,
        }))
    }

    /// Stores the heartbeat, replacing the worker's previous one.
    pub async fn save_worker(&self, r: &WorkerReport) -> Result<()> {
        on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO workers (agent_id, host, tenant_id, version, interval_s, started_at, \
                 last_scan_at, last_upload_at, sessions_seen, uploaded, queued, failing, parked, \
                 consecutive_failures, alert_after, last_error, seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                 ON CONFLICT (agent_id, host) DO UPDATE SET version = excluded.version, \
                 interval_s = excluded.interval_s, started_at = excluded.started_at, \
                 last_scan_at = excluded.last_scan_at, last_upload_at = excluded.last_upload_at, \
                 sessions_seen = excluded.sessions_seen, uploaded = excluded.uploaded, \
                 queued = excluded.queued, failing = excluded.failing, parked = excluded.parked, \
                 consecutive_failures = excluded.consecutive_failures, \
                 alert_after = excluded.alert_after, last_error = excluded.last_error, \
                 seen_at = excluded.seen_at",
            )
            .bind(*r.agent_id.as_uuid())
            .bind(r.host.clone())
            .bind(*r.tenant_id.as_uuid())
            .bind(r.version.clone())
            .bind(i64::from(r.interval_s))
            .bind(r.started_at)
            .bind(r.last_scan_at)
            .bind(r.last_upload_at)
            .bind(big(r.sessions_seen))
            .bind(big(r.uploaded))
            .bind(big(r.queued))
            .bind(big(r.failing))
            .bind(big(r.parked))
            .bind(big(r.consecutive_failures))
            .bind(i64::from(r.alert_after))
            .bind(r.last_error.clone())
            .bind(r.seen_at)
            .execute(p)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Workers by agent, then host; `stale` as of `now_ms`.
    pub async fn list_workers(&self, f: &WorkerFilter, now_ms: i64) -> Result<Vec<Worker>> {
        let rows: Vec<WorkerRow> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT w.agent_id, a.name AS agent_name, w.tenant_id, w.host, w.version, \
                 w.interval_s, w.started_at, w.last_scan_at, w.last_upload_at, w.sessions_seen, \
                 w.uploaded, w.queued, w.failing, w.parked, w.consecutive_failures, \
                 w.last_error, w.seen_at \
                 FROM workers w JOIN agents a ON a.id = w.agent_id \
                 WHERE ($1 IS NULL OR w.tenant_id = $1) AND ($2 IS NULL OR w.agent_id = $2) \
                 AND ($3 IS NULL OR w.agent_id > $3 OR (w.agent_id = $3 AND w.host > $4)) \
                 ORDER BY w.agent_id, w.host LIMIT $5",
            )
            .bind(f.tenant.map(|t| *t.as_uuid()))
            .bind(f.agent.map(|a| *a.as_uuid()))
            .bind(f.after.as_ref().map(|(a, _)| *a.as_uuid()))
            .bind(f.after.as_ref().map(|(_, h)| h.clone()))
            .bind(i64::from(f.limit))
            .fetch_all(p)
            .await
        })?;
        Ok(rows.into_iter().map(|r| r.into_worker(now_ms)).collect())
    }
}
