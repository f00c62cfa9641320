//! After a SIGKILL: how long until the other nodes stop listing the dead
//! node's agents as online (its liveness key must expire first).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::nodes::Node;

#[derive(Debug, Serialize)]
pub struct KillReport {
    pub killed_node: String,
    pub queried_node: String,
    /// The killed node's agents listed online just before the kill (`None`:
    /// the probe did not answer; see `first_poll_error`).
    pub listed_on_killed: Option<usize>,
    /// SIGKILL → first poll listing none of them; `None` past the timeout.
    pub offline_after_s: Option<f64>,
    pub timeout_s: f64,
    /// Agents still listed then (the survivors' own; should be unchanged).
    pub listed_after: usize,
    pub poll_errors: u64,
    pub first_poll_error: Option<String>,
}

/// SIGKILLs `victim`, then asks `probe` every 100 ms which agents are online
/// until none of the victim's is listed (or `timeout`).
pub async fn kill_and_wait(
    victim: &mut Node,
    probe: &Node,
    timeout: Duration,
    online: &Online,
) -> Result<KillReport> {
    let mut kill = KillReport {
        killed_node: victim.id.clone(),
        queried_node: probe.id.clone(),
        listed_on_killed: None,
        offline_after_s: None,
        timeout_s: timeout.as_secs_f64(),
        listed_after: 0,
        poll_errors: 0,
        first_poll_error: None,
    };
    match online.node_ids(probe).await {
        Ok(listed) => {
            kill.listed_on_killed = Some(listed.iter().filter(|n| **n == victim.id).count())
        }
        Err(e) => kill.note(e),
    }
    let started = Instant::now();
    if let Some(mut child) = victim.child.take() {
        child.kill().await.context("SIGKILL")?;
    }
    while started.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match online.node_ids(probe).await {
            Ok(listed) if !listed.contains(&victim.id) => {
                kill.offline_after_s = Some(started.elapsed().as_secs_f64());
                kill.listed_after = listed.len();
                break;
            }
            Ok(_) => {}
            Err(e) => kill.note(e),
        }
    }
    Ok(kill)
}

impl KillReport {
    fn note(&mut self, e: anyhow::Error) {
        self.poll_errors += 1;
        self.first_poll_error
            .get_or_insert_with(|| format!("{e:#}"));
    }
}

/// Asks a node which agents of the tenant are online.
pub struct Online {
    pub client: reqwest::Client,
    pub tenant: String,
    pub key: String,
}

impl Online {
    /// The node id of every agent `GET /api/tenants/{id}/agents/online` lists.
    pub async fn node_ids(&self, node: &Node) -> Result<Vec<String>> {
        let url = format!("{}/api/tenants/{}/agents/online", node.http, self.tenant);
        let resp = self.client.get(&url).bearer_auth(&self.key).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let Some(agents) = body["agents"].as_array().filter(|_| status.is_success()) else {
            bail!("{url} answered {status}: {body}");
        };
        Ok(agents
            .iter()
            .map(|a| a["node_id"].as_str().unwrap_or_default().to_owned())
            .collect())
    }
}
