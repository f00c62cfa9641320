//! The session tables' months: PostgreSQL partitions made ahead (at start and by the
//! retention sweep) and dropped whole past `--session-retention`; the rows left past
//! it (SQLite, the default partitions) deleted in batches.

use super::{Result, Store};

/// Months of session partitions kept made ahead of the current one.
const MONTHS_AHEAD: i32 = 2;

/// The session tables PostgreSQL partitions by month of `started_at`.
const PARTITIONED: [&str; 3] = ["sessions", "session_parts", "session_usage"];

/// Unix ms of the first instant of the month `months` after the one holding `at_ms`.
fn month_start(at_ms: i64, months: i32) -> Option<(i64, String)> {
    use chrono::{Datelike, TimeZone, Utc};
    let at = Utc.timestamp_millis_opt(at_ms).single()?;
    let index = at.year() * 12 + at.month0() as i32 + months;
    let (year, month0) = (index.div_euclid(12), index.rem_euclid(12) as u32);
    let start = Utc
        .with_ymd_and_hms(year, month0 + 1, 1, 0, 0, 0)
        .single()?;
    Some((
        start.timestamp_millis(),
        format!("{year:04}{:02}", month0 + 1),
    ))
}

impl Store {
    /// PostgreSQL: makes sure the month of `now_ms` and the next [`MONTHS_AHEAD`] have
    /// their partitions. A month whose rows already sit in the DEFAULT partition (an
    /// upload made before its partition existed) is left there, with a warning.
    /// Returns how many partitions were made. SQLite has nothing to do.
    pub async fn ensure_session_partitions(&self, now_ms: i64) -> Result<u32> {
        let super::dialect::Pool::Postgres(pool) = &self.writer else {
            return Ok(0);
        };
        let mut made = 0;
        for m in 0..=MONTHS_AHEAD {
            let (Some((from, name)), Some((to, _))) =
                (month_start(now_ms, m), month_start(now_ms, m + 1))
            else {
                continue;
            };
            for table in PARTITIONED {
                let partition = format!("{table}_p{name}");
                let (exists,): (Option<String>,) = sqlx::query_as("SELECT to_regclass($1)::text")
                    .bind(&partition)
                    .fetch_one(pool)
                    .await?;
                if exists.is_some() {
                    continue;
                }
                let sql = format!(
                    "CREATE TABLE {partition} PARTITION OF {table} FOR VALUES FROM ({from}) TO ({to})"
                );
                match sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await {
                    Ok(_) => made += 1,
                    Err(e) => {
                        tracing::warn!(partition, error = %e, "session partition not made; its rows stay in the default partition")
                    }
                }
            }
        }
        Ok(made)
    }
}

impl Store {
    /// PostgreSQL: drops the monthly partitions of all three session tables that end
    /// at or before `before_ms` (whole months past retention go in one statement each).
    /// Returns how many months went.
    pub async fn drop_old_session_partitions(&self, before_ms: i64) -> Result<u32> {
        let super::dialect::Pool::Postgres(pool) = &self.writer else {
            return Ok(0);
        };
        let months: Vec<(String,)> = sqlx::query_as(
            "SELECT substring(c.relname from 11) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'sessions'::regclass AND c.relname ~ '^sessions_p[0-9]{6}$'",
        )
        .fetch_all(pool)
        .await?;
        let mut dropped = 0;
        for (month,) in months {
            let end = month_of(&month).and_then(|start| month_start(start, 1));
            if end.is_none_or(|(end, _)| end > before_ms) {
                continue;
            }
            for table in PARTITIONED {
                let sql = format!("DROP TABLE IF EXISTS {table}_p{month}");
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
            }
            tracing::info!(month, "session partitions past retention dropped");
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Deletes up to `limit` rows of each session table started before `before_ms`
    /// (what partition drops left: SQLite, PostgreSQL's default partitions and the
    /// month that straddles the cutoff); returns the most any table lost.
    pub async fn delete_old_sessions(&self, before_ms: i64, limit: u32) -> Result<u64> {
        let mut most = 0;
        for (table, key) in [
            ("session_usage", "session_id, model, started_at"),
            ("session_parts", "session_id, n, started_at"),
            ("sessions", "id, started_at"),
            ("session_ids", "id"),
        ] {
            most = most.max(
                self.delete_aged(table, key, "started_at", before_ms, limit)
                    .await?,
            );
        }
        Ok(most)
    }
}

/// Unix ms of the start of the month `YYYYMM`.
fn month_of(yyyymm: &str) -> Option<i64> {
    use chrono::{TimeZone, Utc};
    let (y, m) = (
        yyyymm.get(..4)?.parse().ok()?,
        yyyymm.get(4..)?.parse().ok()?,
    );
    Some(
        Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()?
            .timestamp_millis(),
    )
}
