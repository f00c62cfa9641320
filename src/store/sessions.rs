//! Agent sessions: their facts, token usage per model, and the transcript in gzip parts
//! (PostgreSQL partitions all three by month of `started_at`, see migration 0011).
//! Every statement names `started_at`, so PostgreSQL reads one partition.

use nexus_proto::{AgentId, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::dialect::{on_pool, on_writer};
use super::{Result, Store, StoreError};
use crate::time::now_ms;

/// Tokens one model used in a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelUsage {
    pub model: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    pub source: String,
    pub started_at: i64,
    pub ended_at: i64,
    pub cost_usd: Option<f64>,
    /// A JSON object, serialized.
    pub metadata: Option<String>,
    pub usage: Vec<ModelUsage>,
    /// How many transcript parts make the session (1 for one uploaded whole).
    pub parts: u32,
}

/// One part of a transcript: `data` is gzip of `bytes` decoded bytes.
#[derive(Debug, Clone)]
pub struct Part {
    pub n: u32,
    pub bytes: u64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Parts are still expected (`PUT …/parts/{n}`, then `POST …/complete`).
    Uploading,
    Complete,
}

/// A stored session as the API shows it (the transcript is read apart).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Session {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub agent_id: AgentId,
    pub source: String,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: i64,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ended_at: i64,
    /// As the uploader reported it.
    pub cost_usd: Option<f64>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub usage: Vec<ModelUsage>,
    pub parts: u32,
    /// The transcript's decoded size, once complete.
    pub transcript_bytes: u64,
    pub status: SessionStatus,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// `None` matches everything; `from` inclusive, `to` exclusive (Unix ms of `started_at`).
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub tenant: Option<TenantId>,
    pub agent: Option<AgentId>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Where a page of sessions starts: after this `(started_at, id)`, newest first.
pub type SessionKey = (i64, Uuid);

type SessionRow = (
    Uuid,
    Uuid,
    Uuid,
    String,
    i64,
    i64,
    Option<f64>,
    Option<String>,
    i32,
    i64,
    String,
    i64,
);

const COLS: &str = "id, tenant_id, agent_id, source, started_at, ended_at, cost_usd, metadata, \
                    parts, transcript_bytes, status, created_at";

fn session(r: SessionRow, usage: Vec<ModelUsage>) -> Result<Session> {
    let metadata = match r.7 {
        None => None,
        Some(text) => Some(
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("session metadata: {e}")))?,
        ),
    };
    let status = match r.10.as_str() {
        "uploading" => SessionStatus::Uploading,
        "complete" => SessionStatus::Complete,
        other => return Err(StoreError::Corrupt(format!("session status {other:?}"))),
    };
    Ok(Session {
        id: r.0,
        tenant_id: TenantId::from_uuid(r.1),
        agent_id: AgentId::from_uuid(r.2),
        source: r.3,
        started_at: r.4,
        ended_at: r.5,
        cost_usd: r.6,
        metadata,
        usage,
        parts: u32::try_from(r.8).unwrap_or_default(),
        transcript_bytes: u64::try_from(r.9).unwrap_or_default(),
        status,
        created_at: r.11,
    })
}

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

type UsageRow = (Uuid, String, i64, i64, i64, i64);

fn model_usage((_, model, input, output, read, write): UsageRow) -> ModelUsage {
    let n = |v: i64| u64::try_from(v).unwrap_or_default();
    ModelUsage {
        model,
        input_tokens: n(input),
        output_tokens: n(output),
        cache_read_tokens: n(read),
        cache_write_tokens: n(write),
    }
}

impl Store {
    /// Stores a new session with its usage and, uploaded whole, its one transcript part
    /// (then it is complete), in one transaction. An existing id is a
    /// [`StoreError::Conflict`] and changes nothing.
    pub async fn create_session(&self, new: &NewSession, whole: Option<&Part>) -> Result<()> {
        let status = if whole.is_some() {
            "complete"
        } else {
            "uploading"
        };
        let bytes = whole.map_or(0, |p| p.bytes);
        let (id, tenant, started) = (new.id, *new.tenant_id.as_uuid(), new.started_at);
        on_writer!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO session_ids (id, tenant_id, agent_id, started_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(tenant)
                .bind(*new.agent_id.as_uuid())
                .bind(started)
                .execute(&mut *tx)
                .await
                .map_err(super::conflict_as("session"))?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO sessions ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            )))
            .bind(id)
            .bind(tenant)
            .bind(*new.agent_id.as_uuid())
            .bind(&new.source)
            .bind(started)
            .bind(new.ended_at)
            .bind(new.cost_usd)
            .bind(new.metadata.clone())
            .bind(i32::try_from(new.parts).unwrap_or(i32::MAX))
            .bind(tokens(bytes))
            .bind(status)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            for u in &new.usage {
                sqlx::query(
                    "INSERT INTO session_usage (session_id, tenant_id, agent_id, started_at, model, \
                     input_tokens, output_tokens, cache_read_tokens, cache_write_tokens) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(tenant)
                .bind(*new.agent_id.as_uuid())
                .bind(started)
                .bind(&u.model)
                .bind(tokens(u.input_tokens))
                .bind(tokens(u.output_tokens))
                .bind(tokens(u.cache_read_tokens))
                .bind(tokens(u.cache_write_tokens))
                .execute(&mut *tx)
                .await?;
            }
            if let Some(part) = whole {
                sqlx::query(
                    "INSERT INTO session_parts (session_id, tenant_id, started_at, n, bytes, data) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id)
                .bind(tenant)
                .bind(started)
                .bind(i32::try_from(part.n).unwrap_or(i32::MAX))
                .bind(tokens(part.bytes))
                .bind(part.data.as_slice())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The session, with its usage; `within` limits it to a tenant.
    pub async fn get_session(&self, id: Uuid, within: Option<TenantId>) -> Result<Session> {
        let found: Option<SessionRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLS} FROM sessions WHERE id = $1 \
                 AND started_at = (SELECT started_at FROM session_ids WHERE id = $1) \
                 AND ($2 IS NULL OR tenant_id = $2)"
            )))
            .bind(id)
            .bind(within.map(|t| *t.as_uuid()))
            .fetch_optional(p)
            .await
        })?;
        let row = found.ok_or(StoreError::NotFound("session"))?;
        let rows = self.session_usage(&[(row.4, row.0)]).await?;
        session(row, rows.into_iter().map(model_usage).collect())
    }

    /// Usage rows of the sessions `(started_at, id)`.
    async fn session_usage(&self, keys: &[SessionKey]) -> Result<Vec<UsageRow>> {
        let mut out = Vec::new();
        for (started, id) in keys {
            let rows: Vec<UsageRow> = on_pool!(self, p => {
                sqlx::query_as(
                    "SELECT session_id, model, input_tokens, output_tokens, cache_read_tokens, \
                     cache_write_tokens FROM session_usage WHERE session_id = $1 AND started_at = $2 \
                     ORDER BY model",
                )
                .bind(*id)
                .bind(*started)
                .fetch_all(p)
                .await
            })?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Sessions newest first (by `started_at`, then id), after `after`.
    pub async fn list_sessions(
        &self,
        filter: &SessionFilter,
        after: Option<SessionKey>,
        limit: u32,
    ) -> Result<Vec<Session>> {
        let rows: Vec<SessionRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLS} FROM sessions WHERE ($1 IS NULL OR tenant_id = $1) \
                 AND ($2 IS NULL OR agent_id = $2) AND ($3 IS NULL OR started_at >= $3) \
                 AND ($4 IS NULL OR started_at < $4) \
                 AND ($5 IS NULL OR started_at < $5 OR (started_at = $5 AND id < $6)) \
                 ORDER BY started_at DESC, id DESC LIMIT $7"
            )))
            .bind(filter.tenant.map(|t| *t.as_uuid()))
            .bind(filter.agent.map(|a| *a.as_uuid()))
            .bind(filter.from)
            .bind(filter.to)
            .bind(after.map(|(s, _)| s))
            .bind(after.map(|(_, id)| id))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        let keys: Vec<SessionKey> = rows.iter().map(|r| (r.4, r.0)).collect();
        let mut usage = self.session_usage(&keys).await?;
        rows.into_iter()
            .map(|r| {
                let mine: Vec<ModelUsage> = usage
                    .extract_if(.., |u| u.0 == r.0)
                    .map(model_usage)
                    .collect();
                session(r, mine)
            })
            .collect()
    }

    /// Stores part `part.n` of an uploading session (again: replaced). `false` when the
    /// session is not uploading any more.
    pub async fn put_session_part(&self, s: &Session, part: &Part) -> Result<bool> {
        let n = on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO session_parts (session_id, tenant_id, started_at, n, bytes, data) \
                 SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM sessions \
                 WHERE id = $1 AND started_at = $3 AND status = 'uploading') \
                 ON CONFLICT (session_id, n, started_at) DO UPDATE SET bytes = excluded.bytes, data = excluded.data",
            )
            .bind(s.id)
            .bind(*s.tenant_id.as_uuid())
            .bind(s.started_at)
            .bind(i32::try_from(part.n).unwrap_or(i32::MAX))
            .bind(tokens(part.bytes))
            .bind(part.data.as_slice())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }

    /// The part numbers stored for the session, ascending.
    pub async fn session_part_numbers(&self, s: &Session) -> Result<Vec<u32>> {
        let rows: Vec<(i32,)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT n FROM session_parts WHERE session_id = $1 AND started_at = $2 ORDER BY n",
            )
            .bind(s.id)
            .bind(s.started_at)
            .fetch_all(p)
            .await
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(n,)| u32::try_from(n).ok())
            .collect())
    }

    /// Marks an uploading session complete if all its parts are there; `false` if not.
    pub async fn complete_session(&self, s: &Session) -> Result<bool> {
        let n = on_writer!(self, p => {
            sqlx::query(
                "UPDATE sessions SET status = 'complete', transcript_bytes = \
                 (SELECT COALESCE(SUM(bytes), 0) FROM session_parts WHERE session_id = $1 AND started_at = $2) \
                 WHERE id = $1 AND started_at = $2 AND status = 'uploading' AND parts = \
                 (SELECT COUNT(*) FROM session_parts WHERE session_id = $1 AND started_at = $2)",
            )
            .bind(s.id)
            .bind(s.started_at)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }

    /// Part `n` of the session's transcript (gzip), read one at a time so a long
    /// transcript streams out without being held whole.
    pub async fn session_part(&self, s: &Session, n: u32) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT data FROM session_parts WHERE session_id = $1 AND started_at = $2 AND n = $3",
            )
            .bind(s.id)
            .bind(s.started_at)
            .bind(i32::try_from(n).unwrap_or(i32::MAX))
            .fetch_optional(p)
            .await
        })?;
        Ok(row.map(|(data,)| data))
    }
}
