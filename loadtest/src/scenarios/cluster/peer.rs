//! The Socket.IO half of `cluster`: K `node server.js` processes with
//! `@socket.io/redis-adapter` on the same Redis, pinned like the Nexus nodes,
//! the same spread, random load and fan-out. An emit for a socket on another
//! process is forwarded through the adapter (the agent's room `agent:{id}`);
//! a tenant broadcast reaches every process the same way.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::process::Child;

use super::{ClusterOpts, Figures, Measured, Spread, random_pick, seed, spread};
use crate::net;
use crate::peer::{self, PeerOpts};
use crate::proc::{self, Tail};
use crate::report::{Latency, kib, markdown, mib, num, table};
use crate::scenarios::deliver::{self, DeliverReport, Targets};
use crate::scenarios::fanout::{self, FanoutReport};
use crate::server::Emitter;
use crate::target::Target;

#[derive(Debug, Serialize)]
pub struct PeerReport {
    pub processes: usize,
    pub agents: usize,
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub connect_s: f64,
    pub per_process: Vec<ProcessReport>,
    pub deliver: DeliverReport,
    /// Deliveries whose emit went to another process than the socket's.
    pub cross_node: u64,
    pub cross_latency: Latency,
    pub misrouted: u64,
    /// One broadcast to the tenant's room through the first process.
    pub fanout: Option<FanoutReport>,
    /// Why the fan-out was not measured (the emit failed).
    pub fanout_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub sockets: usize,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    pub rss_per_conn_bytes: f64,
    pub deliver_cpu_s: f64,
}

/// One running peer.
struct Peer {
    child: Child,
    pid: u32,
    http: String,
    ws: String,
    tail: Tail,
}

pub async fn run(opts: &ClusterOpts) -> Result<PeerReport> {
    let secret = crate::jwt::random_secret();
    let mut peers = Vec::new();
    let result = async {
        for _ in 0..opts.nodes {
            let (child, addr, tail) = peer::start(&PeerOpts {
                jwt_secret: &secret,
                redis_url: Some(&opts.redis_url),
                cpus: opts.pinning.node_cpus.as_ref(),
            })
            .await?;
            let pid = child.id().context("a peer exited at start")?;
            peers.push(Peer {
                child,
                pid,
                http: format!("http://{addr}"),
                ws: format!("ws://{addr}"),
                tail,
            });
        }
        measure(opts, &secret, &peers).await
    }
    .await;
    if result.is_err() {
        for p in &peers {
            eprintln!("output tail of peer {}:\n{}", p.pid, p.tail.text());
        }
    }
    for p in &mut peers {
        proc::terminate(&mut p.child).await?;
    }
    result
}

async fn measure(opts: &ClusterOpts, secret: &str, peers: &[Peer]) -> Result<PeerReport> {
    let client = net::http_client()?;
    // The baseline has no database: its agents are ids in signed tokens.
    let tenant = uuid::Uuid::now_v7().to_string();
    let agents = (0..opts.agents)
        .map(|_| {
            let id = uuid::Uuid::now_v7().to_string();
            let token = crate::jwt::mint(secret, &id, &tenant, "lt")?;
            Ok((id, token))
        })
        .collect::<Result<Vec<_>>>()?;
    let ws: Vec<String> = peers.iter().map(|p| p.ws.clone()).collect();
    let before = rss_after_gc(&client, peers).await?;
    let Spread {
        mut fleet,
        agents,
        home,
        held,
    } = spread(Target::Socketio, &ws, &agents, &opts.client).await?;
    tokio::time::sleep(opts.client.settle).await;
    let after = rss_after_gc(&client, peers).await?;
    let emitters: Vec<Emitter> = peers
        .iter()
        .map(|p| Emitter::peer(&p.http, client.clone()))
        .collect();
    let targets = Targets {
        pick: random_pick(seed(), peers.len(), agents.len()),
        emitters: emitters.clone(),
        agents: std::sync::Arc::new(agents),
        home,
    };
    let cpu_before = cpu(peers)?;
    let client_before = proc::sample(std::process::id())?;
    let out = deliver::drive(targets, &mut fleet, opts.deliver).await?;
    let client_after = proc::sample(std::process::id())?;
    let cpu_used: Vec<f64> = cpu(peers)?
        .into_iter()
        .zip(cpu_before)
        .map(|(a, b)| a - b)
        .collect();
    let deliver = DeliverReport::new(
        Target::Socketio,
        opts.agents,
        opts.deliver,
        &out,
        Some(cpu_used.iter().sum()),
        client_after.cpu_s - client_before.cpu_s,
    );
    let fanout = fanout::measure(
        &emitters[0],
        Target::Socketio,
        (&tenant, opts.agents),
        &mut fleet,
        opts.fanout_timeout,
    )
    .await
    .map_err(|e| format!("{e:#}"));
    let (status, connect_s) = (fleet.status.clone(), fleet.elapsed.as_secs_f64());
    fleet.close().await;
    let per_process = peers
        .iter()
        .enumerate()
        .map(|(j, p)| {
            let (b, a, n) = (before[j], after[j], held[j]);
            ProcessReport {
                pid: p.pid,
                sockets: n,
                rss_before_bytes: b,
                rss_after_bytes: a,
                rss_per_conn_bytes: (a as f64 - b as f64) / n.max(1) as f64,
                deliver_cpu_s: cpu_used[j],
            }
        })
        .collect();
    Ok(PeerReport {
        processes: peers.len(),
        agents: opts.agents,
        connected: status.connected,
        failed: status.failed,
        first_error: status.first_error,
        connect_s,
        per_process,
        deliver,
        cross_node: out.cross_node,
        cross_latency: out.cross_latency,
        misrouted: out.misrouted,
        fanout: fanout.as_ref().ok().cloned(),
        fanout_error: fanout.err(),
    })
}

/// Each process's RSS after a full GC (its garbage is not connection cost).
async fn rss_after_gc(client: &reqwest::Client, peers: &[Peer]) -> Result<Vec<u64>> {
    for p in peers {
        client
            .post(format!("{}/gc", p.http))
            .send()
            .await
            .context("POST /gc")?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    peers
        .iter()
        .map(|p| Ok(proc::sample(p.pid)?.rss_bytes))
        .collect()
}

fn cpu(peers: &[Peer]) -> Result<Vec<f64>> {
    peers
        .iter()
        .map(|p| Ok(proc::sample(p.pid)?.cpu_s))
        .collect()
}

impl PeerReport {
    pub fn figures(&self) -> Figures {
        Measured {
            servers: self.processes,
            sockets: self.connected,
            connect_s: self.connect_s,
            rss_per_conn_bytes: self
                .per_process
                .iter()
                .map(|p| p.rss_per_conn_bytes)
                .collect(),
            deliver: &self.deliver,
            cross: &self.cross_latency,
            // Per delivered event here: a forwarded emit is answered before
            // it is known to reach a socket.
            cpu_us_per_event: self
                .deliver
                .server_cpu_s
                .filter(|_| self.deliver.delivered > 0)
                .map(|s| s * 1e6 / self.deliver.delivered as f64),
            fanout: self.fanout.as_ref(),
        }
        .into()
    }

    pub fn table(&self) -> String {
        let header = [
            "pid",
            "sockets",
            "RSS before",
            "RSS after",
            "RSS/conn",
            "CPU (deliver)",
        ];
        let rows: Vec<Vec<String>> = self
            .per_process
            .iter()
            .map(|p| {
                vec![
                    p.pid.to_string(),
                    p.sockets.to_string(),
                    mib(p.rss_before_bytes as f64),
                    mib(p.rss_after_bytes as f64),
                    kib(p.rss_per_conn_bytes),
                    format!("{} s", num(p.deliver_cpu_s)),
                ]
            })
            .collect();
        let mut out = format!(
            "\ncluster · {} Socket.IO processes (redis-adapter) · {} agents\n\n{}",
            self.processes,
            self.agents,
            markdown(&header, &rows)
        );
        out.push_str(&self.deliver.table());
        match (&self.fanout, &self.fanout_error) {
            (Some(f), _) => out.push_str(&f.table()),
            (None, e) => out.push_str(&format!(
                "\nfan-out not measured: {}\n",
                e.as_deref().unwrap_or("?")
            )),
        }
        let mut summary = vec![
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
                "cross-process deliveries",
                format!("{} of {}", self.cross_node, self.deliver.delivered),
            ),
            ("cross-process send→agent", self.cross_latency.line()),
            ("misrouted (must be 0)", self.misrouted.to_string()),
        ];
        if let Some(e) = &self.first_error {
            summary.push(("first error", e.clone()));
        }
        out.push_str(&table("cluster · Socket.IO", &summary));
        out
    }
}
