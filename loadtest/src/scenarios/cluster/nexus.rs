//! The Nexus half of `cluster`: K nodes on a fresh PostgreSQL schema and
//! Redis, agents provisioned ([`nodes::provision`]), sockets spread, the
//! random cross-node load, a tenant-wide fan-out, then one node SIGKILLed.

use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use super::nodes::{self, Node, cpu, psql, rss, start_nodes, stop_all, with_search_path};
use super::offline::{KillReport, Online, kill_and_wait};
use super::{ClusterOpts, Figures, Measured, Spread, random_pick, seed, spread};
use crate::net;
use crate::node::{self, NodeEnv};
use crate::proc;
use crate::report::{Latency, kib, markdown, mib, num, table};
use crate::scenarios::deliver::{self, DeliverReport, Targets};
use crate::scenarios::fanout::{self, FanoutReport};
use crate::server::Emitter;
use crate::target::Target;

#[derive(Debug, Serialize)]
pub struct NexusReport {
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
    /// `None` where the node answered an error (`listed_online_error`).
    pub listed_online: Vec<Option<usize>>,
    pub listed_online_error: Option<String>,
    pub deliver: DeliverReport,
    /// Deliveries whose event went in through another node than the agent's.
    pub cross_node: u64,
    pub cross_latency: Latency,
    /// Events read by an agent they were not addressed to.
    pub misrouted: u64,
    /// One tenant-wide event through the first node, to every agent.
    pub fanout: Option<FanoutReport>,
    /// Why the fan-out was not measured (the emit failed).
    pub fanout_error: Option<String>,
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

pub async fn run(opts: &ClusterOpts) -> Result<NexusReport> {
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
        node_cpus: opts.pinning.node_cpus.clone(),
        cli_cpus: opts.pinning.provisioning_cpus(),
    };
    let mut nodes = Vec::new();
    let result = match start_nodes(&env, opts, &run_id, &mut nodes).await {
        Ok(()) => measure(&env, opts, &schema, &mut nodes).await,
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

async fn measure(
    env: &NodeEnv,
    opts: &ClusterOpts,
    schema: &str,
    nodes: &mut [Node],
) -> Result<NexusReport> {
    let p = nodes::provision(env, &opts.database_url, schema, opts.agents).await?;
    let client = net::http_client()?;
    let (
        Spread {
            mut fleet,
            agents,
            home,
            ..
        },
        mut per_node,
    ) = connect_agents(env, opts, nodes, &p).await?;
    let online = Online {
        client: client.clone(),
        tenant: p.tenant_id.clone(),
        key: p.operator_key.clone(),
    };
    let (mut listed_online, mut listed_online_error) = (Vec::with_capacity(nodes.len()), None);
    for node in nodes.iter() {
        match online.node_ids(node).await {
            Ok(ids) => listed_online.push(Some(ids.len())),
            Err(e) => {
                listed_online.push(None);
                listed_online_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let targets = Targets {
        emitters: nodes
            .iter()
            .map(|n| Emitter::nexus(&n.http, client.clone(), &p.operator_key))
            .collect(),
        pick: random_pick(seed(), nodes.len(), agents.len()),
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
    let fanout = fanout::measure(
        &Emitter::nexus(&nodes[0].http, client.clone(), &p.operator_key),
        Target::Nexus,
        (&p.tenant_id, opts.agents),
        &mut fleet,
        opts.fanout_timeout,
    )
    .await
    .map_err(|e| format!("{e:#}"));
    let (victim, rest) = nodes.split_last_mut().context("no nodes")?;
    let kill = kill_and_wait(victim, &rest[0], opts.offline_timeout, &online).await?;
    let (status, connect_s) = (fleet.status.clone(), fleet.elapsed.as_secs_f64());
    fleet.close().await;
    Ok(NexusReport {
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
        listed_online_error,
        deliver,
        cross_node: out.cross_node,
        cross_latency: out.cross_latency,
        misrouted: out.misrouted,
        fanout: fanout.as_ref().ok().cloned(),
        fanout_error: fanout.err(),
        kill,
    })
}

/// Opens the agents' sockets, agent i on node i % K, and reads each node's
/// RSS before and after.
async fn connect_agents(
    env: &NodeEnv,
    opts: &ClusterOpts,
    nodes: &[Node],
    p: &node::Provisioned,
) -> Result<(Spread, Vec<NodeReport>)> {
    let agents = p
        .agents
        .iter()
        .map(|(id, client_id)| {
            let token = crate::jwt::mint(&env.jwt_secret, id, &p.tenant_id, client_id)?;
            Ok((id.clone(), token))
        })
        .collect::<Result<Vec<_>>>()?;
    let ws: Vec<String> = nodes.iter().map(|n| n.ws.clone()).collect();
    let before = rss(nodes)?;
    let spread = spread(Target::Nexus, &ws, &agents, &opts.client).await?;
    tokio::time::sleep(opts.client.settle).await;
    let after = rss(nodes)?;
    let per_node = nodes
        .iter()
        .zip(before.into_iter().zip(after))
        .zip(&spread.held)
        .map(|((node, (b, a)), &held)| NodeReport {
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
    Ok((spread, per_node))
}

impl NexusReport {
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
        match (&self.fanout, &self.fanout_error) {
            (Some(f), _) => out.push_str(&f.table()),
            (None, e) => out.push_str(&format!(
                "\nfan-out not measured: {}\n",
                e.as_deref().unwrap_or("?")
            )),
        }
        out.push_str(&table("cluster", &self.summary()));
        if let Some(e) = self
            .first_error
            .iter()
            .chain(&self.listed_online_error)
            .chain(&self.kill.first_poll_error)
            .next()
        {
            out.push_str(&format!("  first error  {e}\n"));
        }
        out
    }

    pub fn figures(&self) -> Figures {
        Measured {
            servers: self.nodes,
            sockets: self.connected,
            connect_s: self.connect_s,
            rss_per_conn_bytes: self.per_node.iter().map(|n| n.rss_per_conn_bytes).collect(),
            deliver: &self.deliver,
            cross: &self.cross_latency,
            cpu_us_per_event: self.deliver.server_cpu_us_per_event,
            fanout: self.fanout.as_ref(),
        }
        .into()
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
                self.listed_online
                    .iter()
                    .map(|n| n.map_or("error".into(), |n| n.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
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
                        k.listed_on_killed.map_or("?".into(), |n| n.to_string()),
                        k.killed_node,
                        k.queried_node,
                        num(self.node_ttl_s)
                    ),
                    None => format!("not seen offline within {} s", num(k.timeout_s)),
                },
            ),
            ("listed online after", k.listed_after.to_string()),
            ("online poll errors", k.poll_errors.to_string()),
        ]
    }
}
