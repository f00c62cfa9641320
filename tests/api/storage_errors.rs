//! A database that cannot answer *now* (too busy, timed out, going away) is answered
//! 503 "retry later", not 500: the errors are the real ones each database raises.

use std::time::Duration;

use nexus::http::StorageFailure;
use nexus::store::{Limits, Store, StoreError};
use sqlx::Connection;

use crate::both_profiles;
use crate::helpers::{Profile, TestDb};

both_profiles!(a_database_that_cannot_answer_now_is_unavailable);

async fn a_database_that_cannot_answer_now_is_unavailable(p: Profile) {
    let db = TestDb::new(p).await;
    let error = match p {
        // A statement that outlives its statement_timeout: SQLSTATE 57014.
        Profile::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            sqlx::query("SET statement_timeout = '10ms'")
                .execute(&mut conn)
                .await
                .expect("set");
            sqlx::query("SELECT pg_sleep(5)")
                .execute(&mut conn)
                .await
                .expect_err("cancelled by the timeout")
        }
        // Another process holds the write lock and we may not wait: SQLITE_BUSY.
        Profile::Sqlite => {
            let url = format!("{}?mode=rwc", db.url);
            let mut holder = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            sqlx::query("BEGIN EXCLUSIVE")
                .execute(&mut holder)
                .await
                .expect("lock");
            let mut other = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            sqlx::query("PRAGMA busy_timeout = 0")
                .execute(&mut other)
                .await
                .expect("pragma");
            sqlx::query("CREATE TABLE t (x INTEGER)")
                .execute(&mut other)
                .await
                .expect_err("locked")
        }
    };
    let error = StoreError::from(error);
    assert!(
        matches!(StorageFailure::from(&error), StorageFailure::Unavailable),
        "{error}"
    );
}

both_profiles!(a_statement_past_its_limit_is_unavailable_but_a_migration_waits);

/// The statement limit (`--db-statement-timeout`) bounds what a node asks, and a lock
/// held longer makes it "retry later"; a migration is not bound by it and waits.
async fn a_statement_past_its_limit_is_unavailable_but_a_migration_waits(p: Profile) {
    let db = TestDb::new(p).await;
    let limit = Duration::from_millis(200);
    let limits = Limits {
        acquire: Duration::from_secs(5),
        statement: Some(limit),
        idle_in_transaction: Some(Duration::from_secs(5)),
        ..Limits::default()
    };
    let store = Store::connect_with(&db.url, limits).await.expect("connect");
    store.migrate().await.expect("migrate");

    // Another session holds the lock a write needs, for many times the limit.
    let holder = LockHolder::take(p, &db.url).await;
    let refused = tokio::time::timeout(limit * 10, store.create_tenant("acme", "standard"))
        .await
        .expect("given up within the limit (plus a margin)")
        .expect_err("locked out");
    assert!(refused.is_transient(), "{refused}");

    // A migration waits the lock out instead (PostgreSQL: sqlx reads its table, which
    // is locked; SQLite reads an up-to-date schema without the write lock).
    let released = holder.release_after(limit * 3);
    store
        .migrate()
        .await
        .expect("a migration is not bound by the limit");
    released.await.expect("holder");
    store
        .create_tenant("acme", "standard")
        .await
        .expect("unlocked");
}

/// A second session that locks what both a write and a migration need: the tenants
/// and the migrations tables (PostgreSQL), the whole file (SQLite).
enum LockHolder {
    Postgres(sqlx::PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl LockHolder {
    async fn take(p: Profile, url: &str) -> LockHolder {
        let mut holder = match p {
            Profile::Postgres => {
                LockHolder::Postgres(sqlx::PgConnection::connect(url).await.expect("connect"))
            }
            Profile::Sqlite => {
                LockHolder::Sqlite(sqlx::SqliteConnection::connect(url).await.expect("connect"))
            }
        };
        holder
            .run(
                "BEGIN; LOCK TABLE tenants, _sqlx_migrations IN ACCESS EXCLUSIVE MODE",
                "BEGIN EXCLUSIVE",
            )
            .await;
        holder
    }

    async fn run(&mut self, postgres: &'static str, sqlite: &'static str) {
        match self {
            LockHolder::Postgres(c) => sqlx::raw_sql(postgres).execute(c).await.map(drop),
            LockHolder::Sqlite(c) => sqlx::raw_sql(sqlite).execute(c).await.map(drop),
        }
        .expect("holder statement");
    }

    /// Releases the lock once `held` has passed (the length of the outage, not a wait
    /// for anything).
    fn release_after(mut self, held: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            tokio::time::sleep(held).await;
            self.run("ROLLBACK", "ROLLBACK").await;
        })
    }
}
