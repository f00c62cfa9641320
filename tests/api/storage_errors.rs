//! A database that cannot answer *now* (too busy, timed out, going away) is answered
//! 503 "retry later", not 500: the errors are the real ones each database raises.

use nexus::http::StorageFailure;
use nexus::store::StoreError;
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
