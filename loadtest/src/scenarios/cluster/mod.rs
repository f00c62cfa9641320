//! `cluster`: K Nexus nodes on one PostgreSQL schema and one Redis (the
//! cluster profile), then, in the same invocation, K Socket.IO processes with
//! `@socket.io/redis-adapter` on the same Redis: the like-for-like baseline.
//!
//! Both get the same load: agents spread round robin over the K servers,
//! events at `--rate` in through a random server to a random agent (about
//! (K−1)/K of them cross servers over Redis), then one tenant-wide event timed
//! to the last agent. Nexus then has one node SIGKILLed and another one polled
//! until the dead node's agents are no longer listed online ([`nexus`]).

use std::sync::Arc;
use std::time::Duration;

mod nexus;
mod nodes;
mod offline;
mod peer;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::ClientOpts;
use super::deliver::{DeliverOpts, Pick};
use crate::fleet::Fleet;
use crate::net;
use crate::pin::Pinning;
use crate::report::{markdown, num};
use crate::target::Target;
use nexus::NexusReport;
use peer::PeerReport;

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
    pub fanout_timeout: Duration,
    /// Which halves run (`--nexus-only`, `--peer-only`).
    pub nexus: bool,
    pub peer: bool,
    pub pinning: Pinning,
}

#[derive(Debug, Serialize)]
pub struct ClusterRun {
    pub pinning: Pinning,
    pub nexus: Option<NexusReport>,
    /// The Socket.IO redis-adapter baseline.
    pub socketio: Option<PeerReport>,
    /// Both side by side (Markdown).
    pub side_by_side: String,
}

pub async fn run(opts: &ClusterOpts) -> Result<ClusterRun> {
    if opts.nodes < 2 || opts.agents < opts.nodes {
        bail!("cluster needs at least 2 nodes (one is killed, one queried) and an agent per node");
    }
    net::ensure_loopback(&opts.database_url).context("--database-url")?;
    net::ensure_loopback(&opts.redis_url).context("--redis-url")?;
    let nexus = match opts.nexus {
        true => Some(nexus::run(opts).await.context("the Nexus cluster")?),
        false => None,
    };
    let socketio = match opts.peer {
        true => Some(peer::run(opts).await.context("the Socket.IO cluster")?),
        false => None,
    };
    let side_by_side = side_by_side(
        nexus.as_ref().map(NexusReport::figures),
        socketio.as_ref().map(PeerReport::figures),
    );
    Ok(ClusterRun {
        pinning: opts.pinning.clone(),
        nexus,
        socketio,
        side_by_side,
    })
}

impl ClusterRun {
    pub fn table(&self) -> String {
        let mut out = String::new();
        if let Some(n) = &self.nexus {
            out.push_str(&n.table());
        }
        if let Some(p) = &self.socketio {
            out.push_str(&p.table());
        }
        out.push_str(&format!(
            "\ncluster side by side · pinning: {}\n\n{}",
            self.pinning.describe(),
            self.side_by_side
        ));
        out
    }
}

/// The figures both halves report, for the side-by-side table.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub servers: usize,
    pub sockets: usize,
    pub connects_per_s: f64,
    /// Mean over the servers.
    pub rss_per_conn_kib: f64,
    pub delivered_per_s: f64,
    pub lost: i64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cross_p99_ms: f64,
    pub cpu_us_per_event: Option<f64>,
    /// `None`: the fan-out emit failed.
    pub fanout_last_ms: Option<f64>,
    pub fanout_received: Option<usize>,
}

/// What one cluster half measured, as [`Figures`].
pub struct Measured<'a> {
    pub servers: usize,
    pub sockets: usize,
    pub connect_s: f64,
    /// Each server's RSS per connection, bytes.
    pub rss_per_conn_bytes: Vec<f64>,
    pub deliver: &'a crate::scenarios::deliver::DeliverReport,
    pub cross: &'a crate::report::Latency,
    pub cpu_us_per_event: Option<f64>,
    pub fanout: Option<&'a crate::scenarios::fanout::FanoutReport>,
}

impl From<Measured<'_>> for Figures {
    fn from(m: Measured<'_>) -> Figures {
        let rss_kib: f64 = m.rss_per_conn_bytes.iter().map(|b| b / 1024.0).sum();
        Figures {
            servers: m.servers,
            sockets: m.sockets,
            connects_per_s: m.sockets as f64 / m.connect_s.max(1e-9),
            rss_per_conn_kib: rss_kib / m.rss_per_conn_bytes.len().max(1) as f64,
            delivered_per_s: m.deliver.delivered_per_s,
            lost: m.deliver.lost,
            p50_ms: m.deliver.latency.p50_ms,
            p99_ms: m.deliver.latency.p99_ms,
            cross_p99_ms: m.cross.p99_ms,
            cpu_us_per_event: m.cpu_us_per_event,
            fanout_last_ms: m.fanout.map(|f| f.last_ms),
            fanout_received: m.fanout.map(|f| f.received),
        }
    }
}

type Row = (&'static str, fn(&Figures) -> String);

const ROWS: [Row; 12] = [
    ("server processes", |f| f.servers.to_string()),
    ("sockets connected", |f| num(f.sockets as f64)),
    ("connects/s", |f| num(f.connects_per_s)),
    ("RSS per socket, mean of servers (KiB)", |f| {
        num(f.rss_per_conn_kib)
    }),
    ("delivered/s", |f| num(f.delivered_per_s)),
    ("lost (must be 0)", |f| f.lost.to_string()),
    ("send→agent p50 (ms)", |f| num(f.p50_ms)),
    ("send→agent p99 (ms)", |f| num(f.p99_ms)),
    ("cross-server p99 (ms)", |f| num(f.cross_p99_ms)),
    ("server CPU per event (µs, all servers)", |f| {
        f.cpu_us_per_event.map(num).unwrap_or_else(|| "–".into())
    }),
    ("fan-out to all, last agent (ms)", |f| {
        f.fanout_last_ms.map_or("failed".into(), num)
    }),
    ("fan-out received", |f| {
        f.fanout_received.map_or("failed".into(), |n| num(n as f64))
    }),
];

fn side_by_side(nexus: Option<Figures>, socketio: Option<Figures>) -> String {
    let cell = |f: &Option<Figures>, row: fn(&Figures) -> String| {
        f.as_ref().map(row).unwrap_or_else(|| "not run".into())
    };
    let rows: Vec<Vec<String>> = ROWS
        .iter()
        .map(|(name, row)| vec![name.to_string(), cell(&nexus, *row), cell(&socketio, *row)])
        .collect();
    markdown(
        &["metric", "Nexus cluster", "Socket.IO + redis-adapter"],
        &rows,
    )
}

/// The agents spread over the servers, as connecting left them.
struct Spread {
    fleet: Fleet,
    /// Agent ids in fleet order.
    agents: Vec<String>,
    /// Per agent, the index of the server its socket is on.
    home: Vec<usize>,
    /// Sockets each server holds.
    held: Vec<usize>,
}

/// Opens the agents' sockets (`(id, token)`), agent i on server i % K. Past
/// `--per-process` sockets the fleet moves to worker processes (20,000 open
/// files per process here), which report deliveries back on their stdout.
async fn spread(
    target: Target,
    ws: &[String],
    agents: &[(String, String)],
    client: &ClientOpts,
) -> Result<Spread> {
    let k = ws.len();
    // The fleet numbers sockets in the order they open, server by server: the
    // agent list and their home servers are kept in that order.
    let mut order = Vec::with_capacity(agents.len());
    let mut home = Vec::with_capacity(agents.len());
    let mut fleet = Fleet::new();
    let mut held = Vec::with_capacity(k);
    for (j, base) in ws.iter().enumerate() {
        let mut tokens = Vec::new();
        for (id, token) in agents.iter().skip(j).step_by(k) {
            tokens.push(token.clone());
            order.push(id.clone());
            home.push(j);
        }
        let (status, _) = fleet
            .grow(
                target,
                base,
                &tokens,
                client.concurrency,
                client.per_process,
            )
            .await?;
        held.push(status.connected);
    }
    Ok(Spread {
        fleet,
        agents: order,
        home,
        held,
    })
}

/// Event k goes in through a random server to a random agent; a pure
/// function of k so the collector can tell which deliveries crossed servers.
fn random_pick(seed: u64, servers: usize, agents: usize) -> Pick {
    let (servers, agents) = (servers.max(1) as u64, agents.max(1) as u64);
    Arc::new(move |k| {
        let h = splitmix64(seed ^ k);
        ((h % servers) as usize, (splitmix64(h) % agents) as usize)
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fresh random seed for [`random_pick`].
fn seed() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_spread_over_servers_and_agents() {
        let pick = random_pick(42, 3, 1000);
        let mut per_server = [0u32; 3];
        let mut agents = std::collections::HashSet::new();
        for k in 0..30_000 {
            let (server, agent) = pick(k);
            per_server[server] += 1;
            agents.insert(agent);
            assert_eq!(pick(k), (server, agent), "a pure function of k");
        }
        assert!(
            per_server.iter().all(|n| (9_500..10_500).contains(n)),
            "{per_server:?}"
        );
        assert_eq!(agents.len(), 1000);
    }

    #[test]
    fn the_table_shows_both_halves_or_says_which_did_not_run() {
        let nexus = Figures {
            servers: 3,
            sockets: 45_000,
            cpu_us_per_event: Some(123.4),
            ..Figures::default()
        };
        let table = side_by_side(Some(nexus), None);
        assert!(
            table.contains("| sockets connected | 45,000 | not run |"),
            "{table}"
        );
        assert!(table.contains("| server CPU per event (µs, all servers) | 123 | not run |"));
    }
}
