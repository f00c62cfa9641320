//! The cluster's nodes: a fresh PostgreSQL schema, K `nexus serve`
//! processes on it and one Redis, its agents, and their shutdown.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use super::ClusterOpts;
use crate::net;
use crate::node::{self, NodeEnv, Provisioned};
use crate::proc::{self, Tail};

/// One `nexus serve` of the cluster.
pub struct Node {
    pub id: String,
    pub http: String,
    pub ws: String,
    pub pid: u32,
    /// `None` once killed.
    pub child: Option<Child>,
    pub tail: Tail,
}

/// Starts the nodes one by one (each runs the migrations at start).
pub async fn start_nodes(
    env: &NodeEnv,
    opts: &ClusterOpts,
    run_id: &str,
    nodes: &mut Vec<Node>,
) -> Result<()> {
    let client = net::http_client()?;
    let ttl = format!("{}ms", opts.node_ttl.as_millis());
    for k in 0..opts.nodes {
        let id = format!("lt-{run_id}-{k}");
        let extra = [
            ("REDIS_URL", opts.redis_url.as_str()),
            ("NEXUS_NODE_ID", id.as_str()),
            ("NEXUS_NODE_TTL", ttl.as_str()),
        ];
        let (child, addr, tail) = env.serve(&extra).await?;
        let pid = child.id().context("a node exited at start")?;
        nodes.push(Node {
            id,
            http: format!("http://{addr}"),
            ws: format!("ws://{addr}"),
            pid,
            child: Some(child),
            tail,
        });
        net::wait_ok(&client, &format!("http://{addr}/ready")).await?;
    }
    Ok(())
}

/// SIGTERM to every node still running, all at once.
pub async fn stop_all(nodes: &mut [Node]) -> Result<()> {
    let stops = nodes
        .iter_mut()
        .filter_map(|n| n.child.as_mut())
        .map(proc::terminate);
    futures_util::future::join_all(stops)
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    for n in nodes.iter_mut() {
        n.child = None;
    }
    // The log readers may still hold the last lines of a node that just exited.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

pub fn rss(nodes: &[Node]) -> Result<Vec<u64>> {
    nodes
        .iter()
        .map(|n| Ok(proc::sample(n.pid)?.rss_bytes))
        .collect()
}

pub fn cpu(nodes: &[Node]) -> Result<Vec<f64>> {
    nodes
        .iter()
        .map(|n| Ok(proc::sample(n.pid)?.cpu_s))
        .collect()
}

/// The tenant, the operator key and the first agent through the CLI; the
/// other `n − 1` agents are copies of that agent's row written with SQL, its
/// secret hash included. Why: the CLI hashes every agent's own secret with
/// argon2 (≈ 10 ms of CPU each, ≈ 8 min for 45,000 here), and the agents
/// never use a secret — the tool signs their tokens with the nodes' JWT
/// secret, as an agent exchanging its secret would get. Every row is an
/// active agent of the tenant like the CLI's; only the hash is shared.
pub async fn provision(env: &NodeEnv, url: &str, schema: &str, n: usize) -> Result<Provisioned> {
    let started = Instant::now();
    let mut p = node::provision(env, 1).await?;
    let template = p.agents.first().context("the CLI made no agent")?.0.clone();
    // Both go into SQL text: a UUID and our own `nx_lt_…` name, checked.
    uuid::Uuid::parse_str(&template).context("the CLI printed an odd agent id")?;
    if n > 1 {
        let copy = format!(
            "INSERT INTO agents (id, tenant_id, name, client_id, client_secret_hash, status, created_at) \
             SELECT gen_random_uuid(), t.tenant_id, 'lt-copy-' || g, \
                    'nxc_lt' || replace(gen_random_uuid()::text, '-', ''), \
                    t.client_secret_hash, 'active', t.created_at \
             FROM agents t, generate_series(2, {n}) g WHERE t.id = '{template}' \
             RETURNING id, client_id"
        );
        let rows = psql_rows(url, &[&format!("SET search_path TO {schema}"), &copy]).await?;
        p.agents.extend(rows.lines().filter_map(agent_row));
    }
    if p.agents.len() != n {
        bail!("asked for {n} agents, made {}", p.agents.len());
    }
    p.took = started.elapsed();
    Ok(p)
}

/// `id|client_id` of a `psql -A -t` row.
fn agent_row(line: &str) -> Option<(String, String)> {
    let (id, client_id) = line.trim().split_once('|')?;
    uuid::Uuid::parse_str(id).ok()?;
    Some((id.to_owned(), client_id.to_owned()))
}

pub async fn psql(url: &str, sql: &str) -> Result<()> {
    psql_rows(url, &[sql]).await.map(drop)
}

/// Runs the statements in one session; returns the rows printed (`-A -t`:
/// unaligned, `|` between fields).
async fn psql_rows(url: &str, statements: &[&str]) -> Result<String> {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url]);
    for sql in statements {
        cmd.arg("-c").arg(sql);
    }
    let out = cmd
        .output()
        .await
        .context("running psql (the PostgreSQL client creates and drops the run's schema)")?;
    if !out.status.success() {
        bail!(
            "psql -c {statements:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `url` with the schema as the connection's search path (as the server's
/// own PostgreSQL tests do).
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options[search_path]={schema}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_agent_rows_and_skips_the_rest() {
        let id = "0190c8b2-3f00-4c3b-9e2a-2b7c1d000001";
        assert_eq!(
            agent_row(&format!("{id}|nxc_ltabc\n")),
            Some((id.to_owned(), "nxc_ltabc".to_owned()))
        );
        assert_eq!(agent_row("INSERT 0 3"), None);
        assert_eq!(agent_row("not-a-uuid|x"), None);
    }

    #[test]
    fn search_path_joins_the_query() {
        assert_eq!(
            with_search_path("postgres://u@127.0.0.1:5432/test", "s"),
            "postgres://u@127.0.0.1:5432/test?options[search_path]=s"
        );
        assert_eq!(
            with_search_path("postgres://u@127.0.0.1/t?sslmode=disable", "s"),
            "postgres://u@127.0.0.1/t?sslmode=disable&options[search_path]=s"
        );
    }
}
