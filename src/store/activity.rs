//! What the operator dashboard reads about a tenant in bulk: every agent's name and
//! inbox cursor in one query (for the live presence view), and events and webhooks per
//! day in one grouped query per table (for the usage charts).

use std::collections::BTreeMap;

use nexus_proto::{AgentId, Seq, TenantId};
use uuid::Uuid;

use super::dialect::on_pool;
use super::inbox::HEAD_SEQ;
use super::{Cursor, Result, Store};

/// A day in Unix milliseconds: days are UTC days.
pub const DAY_MS: i64 = 86_400_000;

/// An agent of the tenant, named, with its inbox cursor (zero if it never received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCursor {
    pub agent: AgentId,
    pub name: String,
    pub cursor: Cursor,
}

/// Counts for one UTC day, keyed by days since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub events: i64,
    pub webhooks: i64,
}

/// The job sources that are webhooks received (tool calls and other producers are not).
const WEBHOOK_SOURCES: &str = "'clickup', 'slack', 'ingest'";

impl Store {
    /// Every agent of `tenant` with its name and cursor, in one round trip.
    pub async fn tenant_cursors(&self, tenant: TenantId) -> Result<Vec<AgentCursor>> {
        let rows: Vec<(Uuid, String, Option<i64>, Option<i64>)> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT a.id, a.name, {HEAD_SEQ}, c.acked_seq FROM agents a JOIN tenants t ON t.id = a.tenant_id \
                 LEFT JOIN agent_cursors c ON c.agent_id = a.id WHERE a.tenant_id = $1",
            )))
            .bind(*tenant.as_uuid())
            .fetch_all(p)
            .await
        })?;
        let seq = |v: Option<i64>| Seq::new(v.unwrap_or(0).max(0) as u64);
        Ok(rows
            .into_iter()
            .map(|(id, name, last, acked)| AgentCursor {
                agent: AgentId::from_uuid(id),
                name,
                cursor: Cursor {
                    last_seq: seq(last),
                    acked_seq: seq(acked),
                },
            })
            .collect())
    }

    /// Events delivered to the tenant's agents (each event once, however many agents it
    /// reached) and webhooks accepted for it, per UTC day since `since_ms`. Days with
    /// neither are absent. Events are read from the inbox, so days older than the inbox
    /// retention count only what retention has not removed yet.
    pub async fn tenant_activity(
        &self,
        tenant: TenantId,
        since_ms: i64,
    ) -> Result<BTreeMap<i64, DayCounts>> {
        let events: Vec<(i64, i64)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT i.created_at / 86400000 AS day, COUNT(DISTINCT i.event_id) FROM inbox i \
                 JOIN agents a ON a.id = i.agent_id \
                 WHERE a.tenant_id = $1 AND i.created_at >= $2 GROUP BY day",
            )
            .bind(*tenant.as_uuid())
            .bind(since_ms)
            .fetch_all(p)
            .await
        })?;
        let sql = format!(
            "SELECT created_at / 86400000 AS day, COUNT(*) FROM jobs \
             WHERE tenant_id = $1 AND created_at >= $2 AND source IN ({WEBHOOK_SOURCES}) GROUP BY day"
        );
        let webhooks: Vec<(i64, i64)> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(*tenant.as_uuid())
                .bind(since_ms)
                .fetch_all(p)
                .await
        })?;
        // Tenant-wide events are stored once, in the tenant's log.
        let broadcasts: Vec<(i64, i64)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT created_at / 86400000 AS day, COUNT(*) FROM tenant_log \
                 WHERE tenant_id = $1 AND created_at >= $2 GROUP BY day",
            )
            .bind(*tenant.as_uuid())
            .bind(since_ms)
            .fetch_all(p)
            .await
        })?;
        let mut days: BTreeMap<i64, DayCounts> = BTreeMap::new();
        for (day, n) in events.into_iter().chain(broadcasts) {
            days.entry(day).or_default().events += n;
        }
        for (day, n) in webhooks {
            days.entry(day).or_default().webhooks = n;
        }
        Ok(days)
    }
}
