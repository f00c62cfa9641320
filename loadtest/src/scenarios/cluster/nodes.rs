//! The cluster's nodes: a fresh PostgreSQL schema, K `nexus serve`
//! processes on it and one Redis, and their shutdown.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use super::ClusterOpts;
use crate::net;
use crate::node::NodeEnv;
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

pub async fn psql(url: &str, sql: &str) -> Result<()> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .await
        .context("running psql (the PostgreSQL client creates and drops the run's schema)")?;
    if !out.status.success() {
        bail!(
            "psql -c {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
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
