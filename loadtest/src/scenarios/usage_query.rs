//! `usage-query`: how long `GET /api/usage` takes over many `session_usage` rows.
//! Seeds the rows straight into the database (one `INSERT … SELECT` over
//! `generate_series` on PostgreSQL, a recursive CTE on SQLite), spread evenly over
//! `days` days and `agents` agents of one tenant, four models; then starts a node and
//! times the API's default range (the last 30 days) grouped by day, model and agent.
//! Only `session_usage` is seeded: the query reads nothing else.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::node::{self, NodeEnv};
use crate::{net, proc, report};

const DAY_MS: i64 = 86_400_000;
const MODELS: [&str; 4] = [
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5",
    "gpt-5",
    "gemini-2.5-pro",
];
const GROUPS: [&str; 3] = ["day", "model", "agent"];

#[derive(Clone, Debug)]
pub struct UsageQueryOpts {
    pub rows: u64,
    pub agents: usize,
    pub days: i64,
    pub runs: usize,
    /// `None`: a SQLite file in a temp directory; else a (loopback) PostgreSQL, where
    /// the run makes its own schema and drops it.
    pub database_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct UsageQueryReport {
    pub backend: &'static str,
    pub rows: u64,
    pub seed_s: f64,
    pub per_group: Vec<GroupTiming>,
    /// The database's plan for the day query (with literals for the parameters).
    pub plan: String,
}

#[derive(Debug, Serialize)]
pub struct GroupTiming {
    pub group_by: &'static str,
    pub first_ms: f64,
    pub p50_ms: f64,
    pub max_ms: f64,
    pub answer_rows: usize,
}

impl UsageQueryReport {
    pub fn table(&self) -> String {
        let mut rows = vec![
            ("backend", self.backend.to_owned()),
            ("session_usage rows", self.rows.to_string()),
            ("seeding took", format!("{:.1} s", self.seed_s)),
        ];
        let lines: Vec<(String, String)> = self
            .per_group
            .iter()
            .map(|g| {
                let v = format!(
                    "first {:.1} ms · p50 {:.1} ms · max {:.1} ms ({} rows answered)",
                    g.first_ms, g.p50_ms, g.max_ms, g.answer_rows
                );
                (format!("group_by={}", g.group_by), v)
            })
            .collect();
        rows.extend(lines.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let mut out = report::table("GET /api/usage, last 30 days", &rows);
        out.push_str(&format!("\nplan of the day query:\n{}\n", self.plan));
        out
    }
}

/// Where the run's data lives, and what to remove afterwards.
enum Db {
    Sqlite {
        file: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        schema: String,
    },
}

impl Db {
    async fn create(url: Option<&str>) -> Result<(Db, String)> {
        let Some(admin_url) = url else {
            let dir = tempfile::tempdir()?;
            let file = dir.path().join("usage.db");
            let url = format!("sqlite://{}", file.display());
            return Ok((Db::Sqlite { file, _dir: dir }, url));
        };
        net::ensure_loopback(admin_url).context("--database-url")?;
        let schema = format!(
            "nx_lt_usage_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options[search_path]={schema}");
        let db = Db::Postgres {
            admin_url: admin_url.to_owned(),
            schema: schema.clone(),
        };
        db.run_sql(&format!("CREATE SCHEMA {schema};")).await?;
        Ok((db, url))
    }

    fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres { .. } => "postgres",
        }
    }

    /// Runs `sql` (several statements) with the database's own client; its output.
    async fn run_sql(&self, sql: &str) -> Result<String> {
        let mut cmd = match self {
            Db::Sqlite { file, .. } => {
                let mut c = Command::new("sqlite3");
                c.args(["-bail"]).arg(file);
                c
            }
            Db::Postgres { admin_url, schema } => {
                let mut c = Command::new("psql");
                c.args([
                    "-X",
                    "-q",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    admin_url,
                ]);
                c.env("PGOPTIONS", format!("-c search_path={schema}"));
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running the database client (sqlite3 or psql)")?;
        let mut stdin = child.stdin.take().context("no stdin pipe")?;
        stdin.write_all(sql.as_bytes()).await?;
        drop(stdin);
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!(
                "{} failed: {}",
                self.backend(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn drop_schema(&self) {
        if let Db::Postgres { schema, .. } = self
            && let Err(e) = self
                .run_sql(&format!("DROP SCHEMA {schema} CASCADE;"))
                .await
        {
            eprintln!("warning: schema {schema} left behind: {e:#}");
        }
    }
}

/// The seeding statements: agents numbered in a temp table, then the rows.
fn seed_sql(backend: &str, o: &UsageQueryOpts, now_ms: i64) -> String {
    let (n, agents) = (o.rows, o.agents);
    let (start, span) = (now_ms - o.days * DAY_MS, o.days * DAY_MS);
    let number = "CREATE TEMP TABLE lt_agents (n BIGINT PRIMARY KEY, id %T, tenant_id %T);\n\
                  INSERT INTO lt_agents SELECT row_number() OVER (ORDER BY id) - 1, id, tenant_id FROM agents;\n";
    let cols = "session_id, tenant_id, agent_id, started_at, model, input_tokens, output_tokens, \
                cache_read_tokens, cache_write_tokens";
    let model = format!(
        "CASE (i / 100) % 4 {} END",
        MODELS
            .iter()
            .enumerate()
            .map(|(k, m)| format!("WHEN {k} THEN '{m}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let values = format!(
        "a.tenant_id, a.id, {start} + i * {span} / {n}, {model}, 1000 + i % 5000, 200 + i % 700, \
         5000 + i % 20000, i % 3000 FROM"
    );
    if backend == "sqlite" {
        format!(
            "{}WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {n} - 1)\n\
             INSERT INTO session_usage ({cols}) SELECT randomblob(16), {values} s \
             JOIN lt_agents a ON a.n = i % {agents};\nANALYZE;\n",
            number.replace("%T", "BLOB")
        )
    } else {
        format!(
            "{}{}INSERT INTO session_usage ({cols}) SELECT gen_random_uuid(), {values} \
             generate_series(0::bigint, {n} - 1) i JOIN lt_agents a ON a.n = i % {agents};\n\
             ANALYZE session_usage;\n",
            number.replace("%T", "UUID"),
            month_partitions(start, now_ms)
        )
    }
}

/// Monthly partitions of `session_usage` over `[from, to)`, named as the node names
/// those it makes ahead (so it finds them made); rows outside every partition would
/// land in the default one.
fn month_partitions(from_ms: i64, to_ms: i64) -> String {
    let month_start = |y: i32, m: u32| {
        let d = NaiveDate::from_ymd_opt(y, m, 1).unwrap_or_default();
        Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .timestamp_millis()
    };
    let first = Utc
        .timestamp_millis_opt(from_ms)
        .single()
        .unwrap_or_default();
    let (mut y, mut m) = (first.year(), first.month());
    let mut sql = String::new();
    while month_start(y, m) < to_ms {
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        sql.push_str(&format!(
            "CREATE TABLE session_usage_p{y:04}{m:02} PARTITION OF session_usage \
             FOR VALUES FROM ({}) TO ({});\n",
            month_start(y, m),
            month_start(ny, nm)
        ));
        (y, m) = (ny, nm);
    }
    sql
}

/// The day query as the store runs it, with literals, under the backend's EXPLAIN.
fn explain_sql(backend: &str, tenant: &str, now_ms: i64) -> String {
    let tenant = if backend == "sqlite" {
        format!("X'{}'", tenant.replace('-', ""))
    } else {
        format!("'{tenant}'")
    };
    let explain = if backend == "sqlite" {
        "EXPLAIN QUERY PLAN"
    } else {
        "EXPLAIN"
    };
    format!(
        "{explain} SELECT started_at / {DAY_MS} AS day, model, SUM(input_tokens), SUM(output_tokens), \
         SUM(cache_read_tokens), SUM(cache_write_tokens) FROM session_usage \
         WHERE tenant_id = {tenant} AND started_at >= {} AND started_at < {now_ms} \
         AND (NULL IS NULL OR agent_id = NULL) GROUP BY day, model;\n",
        now_ms - 30 * DAY_MS
    )
}

pub async fn run(o: &UsageQueryOpts) -> Result<UsageQueryReport> {
    if o.rows == 0 || o.agents == 0 || o.days < 1 || o.runs == 0 {
        bail!("--rows, --agents, --days and --runs must be at least 1");
    }
    let (db, url) = Db::create(o.database_url.as_deref()).await?;
    let result = seed_and_measure(&db, &url, o).await;
    db.drop_schema().await;
    result
}

async fn seed_and_measure(db: &Db, url: &str, o: &UsageQueryOpts) -> Result<UsageQueryReport> {
    let env = NodeEnv {
        bin: node::locate_bin().await?,
        database_url: url.to_owned(),
        jwt_secret: crate::jwt::random_secret(),
        secrets_key: Some(crate::jwt::random_secret()),
        clickup_api_url: None,
        node_cpus: None,
        cli_cpus: None,
    };
    let p = node::provision(&env, o.agents).await?;
    let now_ms = Utc::now().timestamp_millis();
    eprintln!("seeding {} session_usage rows ({})…", o.rows, db.backend());
    let started = Instant::now();
    db.run_sql(&seed_sql(db.backend(), o, now_ms)).await?;
    let seed_s = started.elapsed().as_secs_f64();
    let plan = db
        .run_sql(&explain_sql(db.backend(), &p.tenant_id, now_ms))
        .await?;
    let (mut child, addr, tail) = env.serve(&[]).await?;
    let timed = time_groups(&addr, &p.tenant_id, &p.operator_key, o.runs).await;
    proc::terminate(&mut child).await?;
    let per_group = timed.inspect_err(|_| eprintln!("node log tail:\n{}", tail.text()))?;
    Ok(UsageQueryReport {
        backend: db.backend(),
        rows: o.rows,
        seed_s,
        per_group,
        plan: plan.trim_end().to_owned(),
    })
}

async fn time_groups(addr: &str, tenant: &str, key: &str, runs: usize) -> Result<Vec<GroupTiming>> {
    let client = net::http_client()?;
    let mut out = Vec::new();
    for group in GROUPS {
        let url = format!("http://{addr}/api/usage?tenant={tenant}&group_by={group}");
        let mut ms = Vec::new();
        let mut answer_rows = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let resp = client.get(&url).bearer_auth(key).send().await?;
            let status = resp.status();
            let body: Value = resp.json().await?;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                bail!("GET {url}: {status} {body}");
            }
            answer_rows = body["rows"].as_array().map_or(0, Vec::len);
        }
        let first_ms = ms[0];
        ms.sort_by(f64::total_cmp);
        out.push(GroupTiming {
            group_by: group,
            first_ms,
            p50_ms: ms[ms.len() / 2],
            max_ms: ms[ms.len() - 1],
            answer_rows,
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_cover_each_month_of_the_range() {
        // 2026-09-15 to 2026-12-01: September through November, December not begun.
        let sql = month_partitions(1_789_430_400_000, 1_796_083_200_000);
        let names: Vec<&str> = sql.lines().filter_map(|l| l.split(' ').nth(2)).collect();
        assert_eq!(
            names,
            [
                "session_usage_p202609",
                "session_usage_p202610",
                "session_usage_p202611"
            ]
        );
        assert!(
            sql.contains("FROM (1788220800000) TO (1790812800000)"),
            "{sql}"
        );
    }
}
