//! Durable state on SQLite (embedded profile) or PostgreSQL (cluster profile).
//!
//! The rest of the code sees one [`Store`]. Each query is written once and expanded for
//! both pools by [`dialect::on_pool!`], so each backend keeps its native column types;
//! the few places where the dialects differ are gathered in [`dialect`].
//!
//! Times are stored as Unix milliseconds (`BIGINT`) in both backends: they compare
//! and sort the same everywhere and cost nothing to convert.

mod activity;
mod agents;
mod alerts;
mod audit;
mod dialect;
mod effects;
mod gauges;
mod inbox;
mod inbox_keys;
mod jobs;
mod mappings;
mod members;
mod mirror_changes;
mod operator_keys;
mod provider;
mod secrets;
mod session_months;
mod sessions;
mod settings;
mod sources;
mod tasks;
mod tenant_log;
mod tenants;
mod usage;
mod workers;

pub use activity::{AgentCursor, DAY_MS, DayCounts};
pub use agents::{Agent, AgentChange, AgentFilter, AgentStatus, NewAgent};
pub use alerts::{AlertPeriod, CostAlert, Firing, NewAlert};
pub use audit::{AuditEntry, AuditFilter, NewAudit};
pub use dialect::{Backend, Limits, SqliteSync, sqlite_file};
pub use effects::{Begun, Holder};
pub use gauges::QueueGauges;
pub use inbox::{Cursor, InboxEvent, LiveState, NewInboxEvent, Retention};
pub use jobs::{Attempt, Enqueued, Failed, Job, JobFilter, JobStatus, NewJob, QueueStats};
pub use mappings::{Alias, Identity, NewMapping, ProjectMapping};
pub use operator_keys::{OperatorKey, Scope, Scopes};
pub use provider::{ExternalUser, Provider, ProviderUserId};
pub use sessions::{
    ModelUsage, NewSession, Part, Session, SessionFilter, SessionKey, SessionStatus,
};
pub use sources::{
    IngestRule, NewSource, Secret, Source, SourceKind, SourceRotation, putio_external_id,
};
pub use tasks::{SlackChannel, TaskMapping};
pub use tenant_log::{Anchor, LogEvent, NewLogEvent};
pub use tenants::{Tenant, TenantChange, TenantStatus, ToolScope};
pub use usage::{UsageFilter, UsageGroup, UsageKey, UsageSum};
pub use workers::{Worker, WorkerFilter, WorkerReport, WorkerStreak};

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use dialect::{Pool, on_pool, on_writer};
use nexus_proto::InvalidExternalId;

use crate::seal::{SealError, SecretsKey};
use crate::telemetry::catalog;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or did not answer in time: callers answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// PostgreSQL aborted the transaction to break a deadlock or a serialization
    /// conflict, and running it again did not get through: callers answer 503.
    #[error("database contention: {0}")]
    Contended(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The rows would pass the limit the caller gave (a tier's quota).
    #[error("over the limit")]
    OverLimit,
    #[error("secrets: {0}")]
    Sealed(#[from] SealError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            sqlx::Error::Database(ref db)
                if unavailable_code(
                    db.code().as_deref(),
                    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some(),
                ) =>
            {
                StoreError::Unavailable(e)
            }
            // deadlock_detected, serialization_failure: the whole transaction was rolled
            // back and may simply be run again (see `retry_contended`).
            sqlx::Error::Database(ref db)
                if matches!(db.code().as_deref(), Some("40P01" | "40001")) =>
            {
                StoreError::Contended(e)
            }
            other => StoreError::Database(other),
        }
    }
}

/// Error codes that say "not now" rather than "never": the server is going away or
/// refusing connections, out of resources, or too busy to finish in time.
fn unavailable_code(code: Option<&str>, sqlite: bool) -> bool {
    let Some(code) = code else { return false };
    // SQLite reports its (extended) result code as a number: BUSY 5, LOCKED 6, IOERR 10,
    // FULL 13, CANTOPEN 14; the primary code is the low byte.
    if sqlite {
        return code
            .parse::<u32>()
            .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14));
    }
    // PostgreSQL SQLSTATEs: class 08 connection exceptions, class 53 insufficient
    // resources (too many connections, disk full, out of memory), 57014 statement
    // timeout, 57P01–57P03 shutting down or not yet accepting connections.
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57014" | "57P01" | "57P02" | "57P03")
}

impl StoreError {
    /// Worth retrying later as it is: the database is down, or lost a race it could not
    /// settle. Callers answer 503 instead of 500.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Contended(_))
    }
}

#[cfg(test)]
mod tests {
    use super::unavailable_code;

    #[test]
    fn not_now_codes_are_unavailable_and_real_errors_are_not() {
        for code in ["5", "517", "6", "13", "10"] {
            assert!(unavailable_code(Some(code), true), "SQLite {code}");
        }
        for code in ["08006", "08001", "53300", "53100", "57014", "57P03"] {
            assert!(unavailable_code(Some(code), false), "PostgreSQL {code}");
        }
        // Constraint violations, syntax errors; SQLite CONSTRAINT (19, 2067 unique).
        for code in ["23505", "42601", "22P02", "40P01"] {
            assert!(!unavailable_code(Some(code), false), "PostgreSQL {code}");
        }
        for code in ["19", "2067", "1"] {
            assert!(!unavailable_code(Some(code), true), "SQLite {code}");
        }
        assert!(!unavailable_code(None, false));
    }
}

/// Retries of a transaction PostgreSQL aborted as [`StoreError::Contended`].
const CONTENDED_RETRIES: u32 = 5;

/// Runs `tx` (one whole transaction, begun and committed inside it) and, when it comes
/// back [`StoreError::Contended`], runs it again from the start after a short jittered
/// pause: the abort rolled all of it back, so nothing is applied twice.
pub(crate) async fn retry_contended<T, F, Fut>(op: &'static str, mut tx: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut retries = 0;
    loop {
        match tx().await {
            Err(StoreError::Contended(e)) if retries < CONTENDED_RETRIES => {
                retries += 1;
                tracing::warn!(error = %e, op, retries, "transaction aborted by the database; retrying");
                metrics::counter!(catalog::DATABASE_RETRIES, "op" => op).increment(1);
                // 5–10 ms, doubling: the two sides of a deadlock come back at different times.
                let cap = 10u64 << (retries - 1);
                let pause = rand::random_range(cap / 2..=cap);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            result => return result,
        }
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`] naming `what`.
pub(crate) fn conflict_as(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::from(e),
    }
}

/// A column holding a Slack or ClickUp id; one that does not parse is a corrupt row.
fn external_id<T: FromStr<Err = InvalidExternalId>>(column: &str) -> Result<T> {
    column.parse().map_err(corrupt_id(column))
}

fn corrupt_id(column: &str) -> impl FnOnce(InvalidExternalId) -> StoreError {
    move |e| StoreError::Corrupt(format!("{e} (stored: {column:?})"))
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    /// The same database; for SQLite a pool of one connection (see [`dialect::on_writer!`]).
    pub(crate) writer: Pool,
    /// Seals and opens the secrets stored in `sources` and `settings` (see [`secrets`]).
    key: Option<Arc<SecretsKey>>,
}

impl Store {
    /// Opens the database named by `url` (`sqlite://path` or `postgres://…`) with
    /// patient [`Limits`]. A SQLite file is created (mode 0600) when missing and runs in
    /// WAL mode with foreign keys on. Sealed secrets need a key first
    /// ([`Store::use_secrets_key`]).
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, Limits::default()).await
    }

    /// As [`Store::connect`], waiting on the database at most as `limits` say.
    pub async fn connect_with(url: &str, limits: Limits) -> Result<Store> {
        let (pool, writer) = dialect::connect(url, limits).await?;
        Ok(Store {
            pool,
            writer,
            key: None,
        })
    }

    /// Copies committed WAL pages into the database file (SQLite; a no-op on
    /// PostgreSQL). Runs on a reader connection, so the fsync it ends with never
    /// stalls the writer the way SQLite's automatic checkpoint (run inside a commit) does.
    pub async fn checkpoint(&self) -> Result<()> {
        dialect::checkpoint(&self.pool).await
    }

    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// Applies every pending migration, however long it takes (the statement limit
    /// does not apply); safe to run on every start and from several nodes.
    pub async fn migrate(&self) -> Result<()> {
        dialect::migrate(&self.writer, dialect::migrator(self.backend())).await
    }

    /// How many embedded migrations the database has not applied yet (for `/ready`).
    pub async fn pending_migrations(&self) -> Result<usize> {
        let applied: Vec<i64> = on_pool!(self, p => {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(p)
                .await
        })
        .or_else(|e| match &e {
            // No migrations table yet: nothing applied.
            sqlx::Error::Database(_) => Ok(Vec::new()),
            _ => Err(e),
        })?;
        Ok(dialect::migrator(self.backend())
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .count())
    }

    /// The retention sweeps: deletes up to `limit` rows of `table` whose `age` column is
    /// before `before`, and returns how many went. `key` names a row (a column, or
    /// several comma-separated). A sweep runs in such batches so that it never holds
    /// the writer long.
    async fn delete_aged(
        &self,
        table: &'static str,
        key: &'static str,
        age: &'static str,
        before: i64,
        limit: u32,
    ) -> Result<u64> {
        let sql = format!(
            "DELETE FROM {table} WHERE ({key}) IN \
             (SELECT {key} FROM {table} WHERE {age} < $1 LIMIT $2)"
        );
        Ok(on_writer!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(before)
                .bind(i64::from(limit))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?)
    }

    /// One round trip to prove the database answers.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p)
                .await
                .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, p => p.close().await);
        on_writer!(self, p => p.close().await)
    }
}
