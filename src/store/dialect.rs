//! Where SQLite (embedded profile) and PostgreSQL (cluster profile) differ. Every other
//! store module writes each query once, with `$n` placeholders (sqlx's SQLite driver
//! binds `$n` by number), and runs it through [`on_pool!`] or [`on_writer!`]; what one
//! text cannot say for both backends is here.
//!
//! - **Column types.** The macros expand a query once per pool, so sqlx encodes each
//!   Rust type as that backend's native type: `Uuid` as `uuid` or a 16-byte `blob`,
//!   `i64` as `bigint` or `integer`, `bool` as `boolean` or `0`/`1`. Each backend has
//!   its own migrations ([`migrator`]); a test keeps their tables and columns alike.
//!   Times are Unix milliseconds in both, so they need no conversion.
//! - **Writers.** SQLite has one writer at a time: writes go through a pool of one
//!   connection (see [`on_writer!`]), and WAL pages are checkpointed off that
//!   connection ([`checkpoint`]). PostgreSQL uses one pool for both.
//! - **Row locks.** PostgreSQL locks rows, so a statement locking several takes them in
//!   a fixed order ([`lock_cursors_in_order`]) and queue claims pass over rows another
//!   node holds ([`skip_locked`]); it may still abort a transaction to break a deadlock
//!   (`StoreError::Contended`). SQLite's single writer runs one write transaction at a
//!   time, so it needs neither.
//! - **Waits** ([`Limits`]): PostgreSQL bounds each statement itself (`statement_timeout`
//!   set at connection start); SQLite's bound is its busy timeout. Migrations run on a
//!   connection of their own without the statement limit ([`migrate`]).
//! - **Long `VALUES` lists** use anonymous `?` on SQLite ([`values`]).
//! - **Functions:** [`greatest`] of two values; the database's clock ([`now_ms`]).
//! - **NUL in text.** PostgreSQL's `text` cannot hold `'\0'` (a statement binding one
//!   fails); SQLite's can. Nothing Nexus stores holds one, so a lookup by such a value
//!   finds nothing, on both, without asking ([`can_match`]).
//!
//! `ON CONFLICT … DO NOTHING / DO UPDATE … excluded.`, `RETURNING`, row values
//! (`(a, b) IN (SELECT …)`) and `LIMIT` in subqueries read the same in both.

use std::fmt::Write;
use std::path::PathBuf;
use std::str::FromStr;

/// Whether `text` can equal a stored value: one holding NUL cannot, and PostgreSQL
/// would refuse it as a parameter.
pub(super) fn can_match(text: &str) -> bool {
    !text.contains('\0')
}
use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Result, StoreError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Rows per multi-row statement: keeps bind parameters under SQLite's limit.
pub(super) const CHUNK: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    pub(super) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Expands `$body` once per backend with `$pool` bound to the concrete pool.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::store::dialect::Pool::Sqlite($pool) => $body,
            $crate::store::dialect::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// As [`on_pool!`], for statements that write. SQLite has one writer at a time; giving
/// writes a single connection makes them queue in process instead of sleeping in
/// SQLite's busy handler (which backs off in steps of up to 100 ms).
macro_rules! on_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.writer {
            $crate::store::dialect::Pool::Sqlite($pool) => $body,
            $crate::store::dialect::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_writer;

/// How long the store waits on the database, and how SQLite's writer commits.
/// [`Limits::default`] is patient (commands, tests) and power-safe; `serve` sets tighter
/// waits from its `--db-*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for a pooled connection, opening one included.
    pub acquire: Duration,
    /// PostgreSQL's `statement_timeout` and SQLite's busy timeout; `None`: no statement
    /// limit, and SQLite waits [`PATIENT_BUSY`] for the write lock.
    pub statement: Option<Duration>,
    /// PostgreSQL's `idle_in_transaction_session_timeout`; `None`: none.
    pub idle_in_transaction: Option<Duration>,
    /// SQLite's writer: whether a commit waits for the disk. PostgreSQL syncs as its
    /// server is configured (`synchronous_commit`).
    pub sqlite_sync: SqliteSync,
}

/// When SQLite's writer waits for the disk (`PRAGMA synchronous` on the writer; readers
/// never write, so theirs does not matter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// Every commit is fsynced before it returns: a webhook answered 2xx survives a
    /// power cut or a kernel panic.
    #[default]
    Full,
    /// A commit reaches the OS at once and the disk at the next checkpoint: a process
    /// crash loses nothing, a power cut may lose the last commits.
    Normal,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            acquire: Duration::from_secs(5),
            statement: None,
            idle_in_transaction: None,
            sqlite_sync: SqliteSync::Full,
        }
    }
}

/// SQLite's busy timeout when no statement limit is set.
const PATIENT_BUSY: Duration = Duration::from_secs(5);

/// SQLite's busy timeout for migrations: longer than any request may wait, yet a
/// `nexus migrate` behind a process that never lets go still ends.
const MIGRATION_BUSY: Duration = Duration::from_secs(60);

/// Opens the database named by `url` (`sqlite://path` or `postgres://…`): the pool for
/// reads and the pool for writes. A SQLite file is created when missing and runs in WAL
/// mode with foreign keys on; its writer commits as `limits.sqlite_sync` says.
pub(super) async fn connect(url: &str, limits: Limits) -> Result<(Pool, Pool)> {
    if url.starts_with("sqlite:") {
        if let Some(file) = sqlite_file(url) {
            create_private_file(&file)?;
        }
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(limits.statement.unwrap_or(PATIENT_BUSY));
        let sync = match limits.sqlite_sync {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        };
        // The writer connects first: it creates the file and switches it to WAL.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(limits.acquire)
            .connect_with(
                opts.clone()
                    .synchronous(sync)
                    .pragma("wal_autocheckpoint", "0"),
            )
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(limits.acquire)
            .connect_with(opts)
            .await?;
        Ok((Pool::Sqlite(pool), Pool::Sqlite(writer)))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let mut opts =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
        // Set at connection start, so every statement of every connection is bounded by
        // the server, and a client gone silent mid-transaction loses its locks.
        let settings = [
            ("statement_timeout", limits.statement),
            (
                "idle_in_transaction_session_timeout",
                limits.idle_in_transaction,
            ),
        ];
        for (name, limit) in settings {
            if let Some(limit) = limit {
                opts = opts.options([(name, format!("{}ms", limit.as_millis().max(1)))]);
            }
        }
        // test_before_acquire (sqlx's default) pings an idle connection inside the
        // acquire timeout: a server that stopped answering costs a new request at most
        // that long, and the silent connection is dropped.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(limits.acquire)
            .connect_with(opts)
            .await?;
        Ok((Pool::Postgres(pool.clone()), Pool::Postgres(pool)))
    } else {
        Err(StoreError::InvalidUrl(
            "expected a sqlite:// or postgres:// url".into(),
        ))
    }
}

/// Applies pending migrations on a connection of their own, without the statement
/// limit: a migration may rewrite a large table, and several nodes starting together
/// wait for each other's migration (sqlx takes a lock). The connection is closed after,
/// so its settings never reach the pool.
pub(super) async fn migrate(writer: &Pool, migrator: &Migrator) -> Result<()> {
    match writer {
        Pool::Sqlite(p) => {
            let mut conn = p.acquire().await?.detach();
            let busy = format!("PRAGMA busy_timeout = {}", MIGRATION_BUSY.as_millis());
            sqlx::query(sqlx::AssertSqlSafe(busy))
                .execute(&mut conn)
                .await?;
            migrator.run(&mut conn).await?;
            conn.close().await?;
        }
        Pool::Postgres(p) => {
            let mut conn = p.acquire().await?.detach();
            sqlx::query("SET statement_timeout = 0")
                .execute(&mut conn)
                .await?;
            migrator.run(&mut conn).await?;
            conn.close().await?;
        }
    }
    Ok(())
}

/// The file a `sqlite:` url names; `None` for any other url and for in-memory databases.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let opts = SqliteConnectOptions::from_str(url).ok()?;
    Some(opts.get_filename().to_owned())
}

/// Creates a missing database file with mode 0600 before SQLite opens it: SQLite gives
/// its `-wal` and `-shm` files the database file's mode, so all three are private
/// (they hold the same pages). An existing file keeps its mode.
fn create_private_file(file: &std::path::Path) -> Result<()> {
    match crate::seal::create_private(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(sqlx::Error::Io(e))),
    }
}

/// Copies committed WAL pages into the SQLite file; PostgreSQL checkpoints by itself.
pub(super) async fn checkpoint(pool: &Pool) -> Result<()> {
    if let Pool::Sqlite(p) = pool {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(p)
            .await?;
    }
    Ok(())
}

pub(super) fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    }
}

/// `$1, $2, …` (or `?, ?, …` on SQLite, see [`values`]).
pub(super) fn placeholders(backend: Backend, n: usize) -> String {
    let mut sql = values(backend, 1, n, "");
    sql.pop();
    sql.remove(0);
    sql
}

/// [`placeholders`] for a second list of one statement, numbered on from `$before + 1`.
pub(super) fn placeholders_after(backend: Backend, before: usize, n: usize) -> String {
    match backend {
        Backend::Sqlite => placeholders(backend, n),
        Backend::Postgres => {
            let marks: Vec<String> = (before + 1..=before + n).map(|i| format!("${i}")).collect();
            marks.join(", ")
        }
    }
}

/// `($1, $2, 0), ($3, $4, 0), …` — placeholders only, never data. SQLite gets anonymous
/// `?`s: it looks each named parameter up by a linear scan, which made a 400-row insert
/// (3,600 `$n`s) quadratic — measured 47 µs per row against 5 µs with `?`.
pub(super) fn values(backend: Backend, rows: usize, cols: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", r * cols + c + 1);
                }
            }
        }
        sql.push_str(tail);
        sql.push(')');
    }
    sql
}

/// The larger of two values: SQLite's two-argument `MAX` is PostgreSQL's `GREATEST`.
pub(super) fn greatest(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "MAX",
        Backend::Postgres => "GREATEST",
    }
}

/// The database's clock in Unix milliseconds, read at each statement. Leases and claims
/// are computed with it so that nodes whose clocks disagree still agree on who holds what.
pub(super) fn now_ms(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        Backend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
    }
}

/// The tail of a queue claim's row selection: on PostgreSQL, lock the rows and pass over
/// those another node's claim holds. SQLite has one writer: the `UPDATE` is the lock.
pub(super) fn skip_locked(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
    }
}

/// The tail of a `SELECT` of one row a transaction goes on to change: PostgreSQL locks
/// it against another node's transaction; SQLite's single writer needs no lock.
pub(super) fn lock_row(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "FOR UPDATE",
    }
}

/// The tail of a read that holds rows of `alias` against updates until the commit
/// (PostgreSQL `FOR SHARE OF`): an inbox append holds its tenants' rows so, a tenant-wide
/// append waits for it (and it for one). SQLite's single writer needs none.
pub(super) fn share_lock_of(backend: Backend, alias: &str) -> String {
    match backend {
        Backend::Sqlite => String::new(),
        Backend::Postgres => format!("FOR SHARE OF {alias}"),
    }
}

/// Locks the cursor rows of `n` agents in ascending `agent_id` order. PostgreSQL sorts
/// before it locks (`FOR UPDATE` applies to the `ORDER BY` output), so the order does not
/// depend on the plan. SQLite needs none: its one writer connection runs a single
/// write transaction at a time.
pub(super) fn lock_cursors_in_order(backend: Backend, n: usize) -> Option<String> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(format!(
            "SELECT agent_id FROM agent_cursors WHERE agent_id IN (VALUES {}) \
             ORDER BY agent_id FOR UPDATE",
            values(backend, n, 1, "")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_on_postgres_and_anonymous_on_sqlite() {
        assert_eq!(
            values(Backend::Postgres, 2, 2, ", 0"),
            "($1, $2, 0), ($3, $4, 0)"
        );
        assert_eq!(values(Backend::Sqlite, 2, 2, ", 0"), "(?, ?, 0), (?, ?, 0)");
        assert_eq!(placeholders(Backend::Postgres, 3), "$1, $2, $3");
        assert_eq!(placeholders(Backend::Sqlite, 2), "?, ?");
        assert_eq!(placeholders_after(Backend::Postgres, 2, 2), "$3, $4");
        assert_eq!(placeholders_after(Backend::Sqlite, 2, 2), "?, ?");
    }

    async fn writer_synchronous(url: &str, limits: Limits) -> i64 {
        let (_, writer) = connect(url, limits).await.expect("connect");
        let Pool::Sqlite(writer) = writer else {
            unreachable!("a sqlite url")
        };
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&writer)
            .await
            .expect("pragma")
    }

    /// A webhook is answered after its commit; by default that commit is on disk
    /// (`synchronous=FULL`, 2), and `--sqlite-synchronous normal` trades that for
    /// throughput (1).
    #[tokio::test]
    async fn the_sqlite_writer_waits_for_the_disk_unless_told_not_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("nexus.db").display());
        assert_eq!(writer_synchronous(&url, Limits::default()).await, 2);
        let normal = Limits {
            sqlite_sync: SqliteSync::Normal,
            ..Limits::default()
        };
        assert_eq!(writer_synchronous(&url, normal).await, 1);
    }
}
