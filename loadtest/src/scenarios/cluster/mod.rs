//! `cluster`: K Nexus nodes on one PostgreSQL schema and one Redis (the
//! cluster profile). Agents are spread round robin over the nodes; events go
//! in through a random node to a random agent, so about (K−1)/K of them must
//! cross nodes over Redis pub/sub. Then one node is SIGKILLed and another one
//! is polled until the dead node's agents are no longer listed online.

use std::sync::Arc;
use std::time::Duration;

mod nodes;
mod offline;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::ClientOpts;
use super::deliver::{self, DeliverOpts, DeliverReport, Pick, Targets};
use crate::fleet::Fleet;
use crate::net;
use crate::node::{self, NodeEnv};
use crate::proc;
use crate::report::{Latency, kib, markdown, mib, num, table};
use crate::server::Emitter;
use crate::target::Target;
use nodes::{Node, cpu, psql, rss, start_nodes, stop_all, with_search_path};
use offline::{KillReport, Online, kill_and_wait};

pub struct ClusterOpts {
    pub nodes: usize,
    pub agents: usize,
    pub deliver: DeliverOpts,
    pub client: ClientOpts,
    /// PostgreSQL the nodes share; each run makes (and drops) its own schema in it.
    pub database_url: String,
    pub redis_url: String,
    pub node_ttl: Duration,
    pub offline_timeout: Duration,
}

#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub nodes: usize,
    pub agents: usize,
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub provision_s: f64,
    pub connect_s: f64,
    pub node_ttl_s: f64,
    pub per_node: Vec<NodeReport>,
    /// Agents listed online by each node once all sockets were open.
    pub listed_online: Vec<usize>,
    pub deliver: DeliverReport,
    /// Deliveries whose event went in through another node than the agent's.
    pub cross_node: u64,
    pub cross_latency: Latency,
    /// Events read by an agent they were not addressed to.
    pub misrouted: u64,
    pub kill: KillReport,
}

#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub node_id: String,
    /// Sockets this node held.
    pub agents: usize,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub rss_per_conn_bytes: f64,
    /// CPU (user + system) while events were sent and drained.
    pub deliver_cpu_s: f64,
    /// WARN and ERROR lines in the node's log, and the first few.
    pub log_problems: u64,
    pub first_problems: Vec<String>,
}

pub async fn run(opts: &ClusterOpts) -> Result<ClusterReport> {
    if opts.nodes < 2 || opts.agents < opts.nodes {
        bail!("cluster needs at least 2 nodes (one is killed, one queried) and an agent per node");
    }
    net::ensure_loopback(&opts.database_url).context("--database-url")?;
    net::ensure_loopback(&opts.redis_url).context("--redis-url")?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let schema = format!("nx_lt_{run_id}");
    psql(&opts.database_url, &format!("CREATE SCHEMA {schema}")).await?;
    let env = NodeEnv {
        bin: node::locate_bin().await?,
        database_url: with_search_path(&opts.database_url, &schema),
        jwt_secret: crate::jwt::random_secret(),
        // 64 hex digits: a 32-byte key.
        secrets_key: Some(crate::jwt::random_secret()),
        clickup_api_url: None,
    };
    let mut nodes = Vec::new();
    let result = match start_nodes(&env, opts, &run_id, &mut nodes).await {
        Ok(()) => measure(&env, opts, &mut nodes).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        for n in &nodes {
            eprintln!("log tail of {}:\n{}", n.id, n.tail.text());
        }
    }
    let stopped = stop_all(&mut nodes).await;
    if let Err(e) = psql(&opts.database_url, &format!("DROP SCHEMA {schema} CASCADE")).await {
        eprintln!("warning: schema {schema} left behind: {e:#}");
    }
    let mut report = result?;
    stopped?;
    for (r, n) in report.per_node.iter_mut().zip(&nodes) {
        (r.log_problems, r.first_problems) = n.tail.problems();
    }
    Ok(report)
}

async fn measure(env: &NodeEnv, opts: &ClusterOpts, nodes: &mut [Node]) -> Result<ClusterReport> {
    let p = node::provision(env, opts.agents).await?;
    let client = net::http_client()?;
    let Spread {
        mut fleet,
        mut per_node,
        agents,
        home,
    } = connect_agents(env, opts, nodes, &p).await?;
    let online = Online {
        client: client.clone(),
        tenant: p.tenant_id.clone(),
        key: p.operator_key.clone(),
    };
    let mut listed_online = Vec::with_capacity(nodes.len());
    for node in nodes.iter() {
        listed_online.push(online.node_ids(node).await?.len());
    }
    let targets = Targets {
        emitters: nodes
            .iter()
            .map(|n| Emitter::nexus(&n.http, client.clone(), &p.operator_key))
            .collect(),
        pick: random_pick(
            uuid::Uuid::new_v4().as_u64_pair().0,
            nodes.len(),
            agents.len(),
        ),
        agents: Arc::new(agents),
        home,
    };
    let cpu_before = cpu(nodes)?;
    let client_before = proc::sample(std::process::id())?;
    let out = deliver::drive(targets, &mut fleet, opts.deliver).await?;
    let client_after = proc::sample(std::process::id())?;
    for ((r, after), before) in per_node.iter_mut().zip(cpu(nodes)?).zip(cpu_before) {
        r.deliver_cpu_s = after - before;
    }
    let deliver = DeliverReport::new(
        Target::Nexus,
        opts.agents,
        opts.deliver,
        &out,
        Some(per_node.iter().map(|r| r.deliver_cpu_s).sum()),
        client_after.cpu_s - client_before.cpu_s,
    );
    let (victim, rest) = nodes.split_last_mut().context("no nodes")?;
    let kill = kill_and_wait(victim, &rest[0], opts.offline_timeout, &online).await?;
    let (status, connect_s) = (fleet.status.clone(), fleet.elapsed.as_secs_f64());
    fleet.close().await;
    Ok(ClusterReport {
        nodes: nodes.len(),
        agents: opts.agents,
        connected: status.connected,
        failed: status.failed,
        first_error: status.first_error,
        provision_s: p.took.as_secs_f64(),
        connect_s,
        node_ttl_s: opts.node_ttl.as_secs_f64(),
        per_node,
        listed_online,
        deliver,
        cross_node: out.cross_node,
        cross_latency: out.cross_latency,
        misrouted: out.misrouted,
        kill,
    })
}

/// The agents spread over the nodes, as connecting left them.
struct Spread {
    fleet: Fleet,
    /// Each node's figures (RSS so far).
    per_node: Vec<NodeReport>,
    /// Agent ids in fleet order.
    agents: Vec<String>,
    /// Per agent, the index of the node its socket is on.
    home: Vec<usize>,
}

/// Opens the agents' sockets, agent i on node i % K, and reads each node's
/// RSS before and after.
async fn connect_agents(
    env: &NodeEnv,
    opts: &ClusterOpts,
    nodes: &[Node],
    p: &node::Provisioned,
) -> Result<Spread> {
    let k = nodes.len();
    // The fleet numbers sockets in the order they open, node by node: the
    // agent list and their home nodes are kept in that order.
    let mut agents = Vec::with_capacity(opts.agents);
    let mut home = Vec::with_capacity(opts.agents);
    let mut fleet = Fleet::new();
    let mut held = Vec::with_capacity(k);
    let before = rss(nodes)?;
    for (j, node) in nodes.iter().enumerate() {
        let mut tokens = Vec::new();
        for (id, client_id) in p.agents.iter().skip(j).step_by(k) {
            tokens.push(crate::jwt::mint(
                &env.jwt_secret,
                id,
                &p.tenant_id,
                client_id,
            )?);
            agents.push(id.clone());
            home.push(j);
        }
        let c = &opts.client;
        let (status, _) = fleet
            .grow(
                Target::Nexus,
                &node.ws,
                &tokens,
                c.concurrency,
                c.per_process,
            )
            .await?;
        held.push(status.connected);
    }
    tokio::time::sleep(opts.client.settle).await;
    let after = rss(nodes)?;
    let per_node = nodes
        .iter()
        .zip(before.into_iter().zip(after))
        .zip(held)
        .map(|((node, (b, a)), held)| NodeReport {
            node_id: node.id.clone(),
            agents: held,
            rss_before_bytes: b,
            rss_after_bytes: a,
            rss_per_conn_bytes: (a as f64 - b as f64) / held.max(1) as f64,
            deliver_cpu_s: 0.0,
            log_problems: 0,
            first_problems: Vec::new(),
        })
        .collect();
    Ok(Spread {
        fleet,
        per_node,
        agents,
        home,
    })
}

/// Event k goes in through a random node to a random agent; a pure function
/// of k so the collector can tell which deliveries crossed nodes.
fn random_pick(seed: u64, nodes: usize, agents: usize) -> Pick {
    let (nodes, agents) = (nodes.max(1) as u64, agents.max(1) as u64);
    Arc::new(move |k| {
        let h = splitmix64(seed ^ k);
        ((h % nodes) as usize, (splitmix64(h) % agents) as usize)
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl ClusterReport {
    pub fn table(&self) -> String {
        let header = [
            "node",
            "sockets",
            "RSS before",
            "RSS after",
            "RSS/conn",
            "CPU (deliver)",
            "WARN/ERROR lines",
        ];
        let mut out = format!(
            "\ncluster · {} nodes (PostgreSQL + Redis) · {} agents\n\n{}",
            self.nodes,
            self.agents,
            markdown(&header, &self.node_rows())
        );
        out.push_str(&self.deliver.table());
        out.push_str(&table("cluster", &self.summary()));
        if let Some(e) = self
            .first_error
            .iter()
            .chain(&self.kill.first_poll_error)
            .next()
        {
            out.push_str(&format!("  first error  {e}\n"));
        }
        out
    }

    fn node_rows(&self) -> Vec<Vec<String>> {
        self.per_node
            .iter()
            .map(|n| {
                vec![
                    n.node_id.clone(),
                    n.agents.to_string(),
                    mib(n.rss_before_bytes as f64),
                    mib(n.rss_after_bytes as f64),
                    kib(n.rss_per_conn_bytes),
                    format!("{} s", num(n.deliver_cpu_s)),
                    n.log_problems.to_string(),
                ]
            })
            .collect()
    }

    fn summary(&self) -> [(&'static str, String); 8] {
        let k = &self.kill;
        [
            (
                "connected / failed",
                format!(
                    "{} / {} in {} s",
                    self.connected,
                    self.failed,
                    num(self.connect_s)
                ),
            ),
            (
                "listed online, per node asked",
                format!("{:?}", self.listed_online),
            ),
            (
                "cross-node deliveries",
                format!("{} of {}", self.cross_node, self.deliver.delivered),
            ),
            ("cross-node accept→deliver", self.cross_latency.line()),
            ("misrouted (must be 0)", self.misrouted.to_string()),
            (
                "SIGKILL → agents offline",
                match k.offline_after_s {
                    Some(s) => format!(
                        "{} s ({} agents of {}, asked {}; node TTL {} s)",
                        num(s),
                        k.listed_on_killed,
                        k.killed_node,
                        k.queried_node,
                        num(self.node_ttl_s)
                    ),
                    None => format!("still listed after {} s", num(k.timeout_s)),
                },
            ),
            ("listed online after", k.listed_after.to_string()),
            ("online poll errors", k.poll_errors.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_spread_over_nodes_and_agents() {
        let pick = random_pick(42, 3, 1000);
        let mut per_node = [0u32; 3];
        let mut agents = std::collections::HashSet::new();
        for k in 0..30_000 {
            let (node, agent) = pick(k);
            per_node[node] += 1;
            agents.insert(agent);
            assert_eq!(pick(k), (node, agent), "a pure function of k");
        }
        assert!(
            per_node.iter().all(|n| (9_500..10_500).contains(n)),
            "{per_node:?}"
        );
        assert_eq!(agents.len(), 1000);
    }
}
