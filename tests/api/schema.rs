//! The SQLite and PostgreSQL migrations must describe one schema: the store writes each
//! query once for both backends, so a column that only one of them has, or lets be
//! NULL, would only fail at run time, in the profile that was not tried.

use std::collections::{BTreeMap, BTreeSet};

use nexus::store::Store;

use crate::helpers::{Profile, TestDb};
use crate::postgres_profile;

/// A column as both backends can state it: a type family and whether it takes NULL.
#[derive(Debug, PartialEq, Eq)]
struct Column {
    ty: String,
    nullable: bool,
}

/// Columns by (table, column), without sqlx's own bookkeeping table.
type Schema = BTreeMap<(String, String), Column>;

/// The type family of a declared type. Ids are UUIDs, stored natively in PostgreSQL and
/// as 16-byte blobs in SQLite, and other bytes are `bytea` and blobs: "bytes" either
/// way; integers are 64-bit in both; floats are doubles in both. A type not listed keeps
/// its own name, so it shows up as a difference until it is given a counterpart here.
fn family(declared: &str) -> String {
    let declared = declared.to_ascii_lowercase();
    match declared.as_str() {
        "uuid" | "blob" | "bytea" => "bytes".to_owned(),
        "bigint" | "integer" => "integer".to_owned(),
        "real" | "double precision" => "float".to_owned(),
        _ => declared,
    }
}

/// Migrates a fresh database of `url`'s backend with the store's own migrations.
async fn migrate(url: &str) {
    let store = Store::connect(url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store.close().await;
}

async fn sqlite_schema(url: &str) -> Schema {
    migrate(url).await;
    let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
    let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT t.name, c.name, c.type, c.\"notnull\", c.pk \
         FROM sqlite_master t JOIN pragma_table_info(t.name) c \
         WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite_%' AND t.name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .expect("read the SQLite schema");
    pool.close().await;
    rows.into_iter()
        .map(|(table, column, ty, not_null, pk)| {
            // SQLite lets a non-integer PRIMARY KEY hold NULL (a compatibility quirk);
            // PostgreSQL's cannot, and the store always writes ids: count it NOT NULL.
            let nullable = not_null == 0 && pk == 0;
            let ty = family(&ty);
            ((table, column), Column { ty, nullable })
        })
        .collect()
}

async fn postgres_schema(url: &str) -> Schema {
    migrate(url).await;
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    // information_schema's columns are domains sqlx does not decode: cast them to text.
    let rows: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text = 'YES' \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations' \
         AND table_name NOT IN (SELECT c.relname FROM pg_class c WHERE c.relispartition \
         AND c.relnamespace = current_schema()::regnamespace)",
    )
    .fetch_all(&pool)
    .await
    .expect("read the PostgreSQL schema");
    pool.close().await;
    rows.into_iter()
        .map(|(table, column, ty, nullable)| {
            let ty = family(&ty);
            ((table, column), Column { ty, nullable })
        })
        .collect()
}

fn describe(column: Option<&Column>) -> String {
    match column {
        None => "missing".to_owned(),
        Some(c) if c.nullable => format!("{} null", c.ty),
        Some(c) => format!("{} not null", c.ty),
    }
}

/// One line per column the two schemas disagree on.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let keys: BTreeSet<_> = sqlite.keys().chain(postgres.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let (a, b) = (sqlite.get(key), postgres.get(key));
            (a != b).then(|| {
                let (a, b) = (describe(a), describe(b));
                format!("{}.{}: sqlite {a}, postgres {b}", key.0, key.1)
            })
        })
        .collect()
}

postgres_profile!(sqlite_and_postgres_migrations_define_the_same_columns);

async fn sqlite_and_postgres_migrations_define_the_same_columns() {
    let sqlite_db = TestDb::new(Profile::Sqlite).await;
    let sqlite = sqlite_schema(&sqlite_db.url).await;
    assert!(
        sqlite.contains_key(&("jobs".to_owned(), "id".to_owned())),
        "read no tables from the SQLite schema: {sqlite:?}"
    );
    let pg_db = TestDb::new(Profile::Postgres).await;
    let postgres = postgres_schema(&pg_db.url).await;

    let diffs = differences(&sqlite, &postgres);

    assert!(
        diffs.is_empty(),
        "the SQLite and PostgreSQL migrations disagree:\n{}",
        diffs.join("\n")
    );
}
