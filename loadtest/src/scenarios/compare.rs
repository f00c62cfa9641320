//! `compare`: connect, deliver (and one fan-out) against Nexus and the
//! Socket.IO baseline, alternating, each on a fresh server; then ratios.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use super::ClientOpts;
use super::connect::{self, ConnectReport};
use super::deliver::{self, DeliverOpts, DeliverReport};
use super::fanout::{self, FanoutReport};
use crate::pin::Pinning;
use crate::report::{markdown, num};
use crate::server::{Server, ServerOpts};
use crate::target::Target;

#[derive(Clone, Debug, Serialize)]
pub struct Round {
    pub round: usize,
    pub target: Target,
    pub connect: ConnectReport,
    pub deliver: DeliverReport,
    pub fanout: Option<FanoutReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Ratios {
    /// Socket.IO's RSS per idle connection ÷ Nexus's (higher = Nexus leaner).
    pub rss_per_conn: f64,
    /// Nexus connects/s ÷ Socket.IO's.
    pub connects_per_s: f64,
    /// Nexus delivered/s ÷ Socket.IO's (≈ 1 while both keep up with --rate).
    pub delivered_per_s: f64,
    /// Socket.IO p99 ÷ Nexus p99 (higher = Nexus faster).
    pub p99: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CompareReport {
    pub pinning: Pinning,
    pub rounds: Vec<Round>,
    pub ratios: Ratios,
    pub markdown: String,
}

pub struct CompareOpts {
    pub agents: usize,
    pub rounds: usize,
    pub deliver: DeliverOpts,
    pub client: ClientOpts,
    pub fanout: bool,
    /// Both servers get the same `--node-cpus`.
    pub pinning: Pinning,
}

pub async fn run(opts: &CompareOpts) -> Result<CompareReport> {
    let mut rounds = Vec::new();
    for round in 1..=opts.rounds.max(1) {
        for target in [Target::Nexus, Target::Socketio] {
            eprintln!("round {round}: {}", target.name());
            let r = one(round, target, opts)
                .await
                .with_context(|| format!("round {round} against {}", target.name()))?;
            print!("{}{}", r.connect.table(), r.deliver.table());
            if let Some(f) = &r.fanout {
                print!("{}", f.table());
            }
            rounds.push(r);
        }
    }
    let (table, ratios) = summarize(&rounds);
    Ok(CompareReport {
        pinning: opts.pinning.clone(),
        rounds,
        ratios,
        markdown: table,
    })
}

async fn one(round: usize, target: Target, opts: &CompareOpts) -> Result<Round> {
    let server_opts = ServerOpts {
        pinning: opts.pinning.clone(),
        ..ServerOpts::default()
    };
    let mut server = Server::start(target, &server_opts).await?;
    let result = async {
        let fixture = server.provision(opts.agents).await?;
        let (connect, mut fleet) = connect::run(&server, &fixture, &opts.client).await?;
        let deliver = deliver::run(&server, &fixture, &mut fleet, opts.deliver).await?;
        let fanout = match opts.fanout {
            true => {
                Some(fanout::run(&server, &fixture, &mut fleet, Duration::from_secs(30)).await?)
            }
            false => None,
        };
        fleet.close().await;
        anyhow::Ok(Round {
            round,
            target,
            connect,
            deliver,
            fanout,
        })
    }
    .await;
    let tail = server.log_tail();
    server.stop().await?;
    result.with_context(|| format!("server log tail:\n{tail}"))
}

fn mean(rounds: &[Round], target: Target, f: impl Fn(&Round) -> Option<f64>) -> f64 {
    let values: Vec<f64> = rounds
        .iter()
        .filter(|r| r.target == target)
        .filter_map(f)
        .collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// A row of the side-by-side table: its name, a round's figure, and whether
/// a higher figure is better.
type Metric = (&'static str, fn(&Round) -> Option<f64>, bool);

const METRICS: [Metric; 11] = [
    (
        "RSS per idle connection (KiB)",
        |r| r.connect.rss_per_conn_bytes.map(|b| b / 1024.0),
        false,
    ),
    (
        "  marginal, after warm-up (KiB)",
        |r| r.connect.rss_per_conn_marginal_bytes.map(|b| b / 1024.0),
        false,
    ),
    ("connects/s", |r| Some(r.connect.connects_per_s), true),
    (
        "server CPU for connect+settle (s)",
        |r| r.connect.server_cpu_s,
        false,
    ),
    ("delivered/s", |r| Some(r.deliver.delivered_per_s), true),
    (
        "accept→deliver p50 (ms)",
        |r| Some(r.deliver.latency.p50_ms),
        false,
    ),
    (
        "accept→deliver p99 (ms)",
        |r| Some(r.deliver.latency.p99_ms),
        false,
    ),
    (
        "accept→deliver max (ms)",
        |r| Some(r.deliver.latency.max_ms),
        false,
    ),
    ("lost", |r| Some(r.deliver.lost as f64), false),
    (
        "server CPU per event (µs; Nexus: per delivery, Socket.IO: per emit)",
        |r| r.deliver.server_cpu_us_per_event,
        false,
    ),
    (
        "fan-out, last agent (ms)",
        |r| r.fanout.as_ref().map(|f| f.last_ms),
        false,
    ),
];

/// The side-by-side table (means over rounds) and the headline ratios.
pub fn summarize(rounds: &[Round]) -> (String, Ratios) {
    let mut rows = Vec::new();
    for (name, f, higher_is_better) in METRICS {
        let n = mean(rounds, Target::Nexus, f);
        let s = mean(rounds, Target::Socketio, f);
        let ratio = if higher_is_better { n / s } else { s / n };
        let ratio = if ratio.is_finite() {
            format!("{}×", num(ratio))
        } else {
            "–".into()
        };
        rows.push(vec![name.to_string(), num(n), num(s), ratio]);
    }
    let table = markdown(
        &[
            "metric (mean of rounds)",
            "Nexus",
            "Socket.IO",
            "Nexus advantage",
        ],
        &rows,
    );
    let ratio = |f: fn(&Round) -> Option<f64>, nexus_over: bool| {
        let (n, s) = (
            mean(rounds, Target::Nexus, f),
            mean(rounds, Target::Socketio, f),
        );
        if nexus_over { n / s } else { s / n }
    };
    let ratios = Ratios {
        rss_per_conn: ratio(|r| r.connect.rss_per_conn_bytes, false),
        connects_per_s: ratio(|r| Some(r.connect.connects_per_s), true),
        delivered_per_s: ratio(|r| Some(r.deliver.delivered_per_s), true),
        p99: ratio(|r| Some(r.deliver.latency.p99_ms), false),
    };
    (table, ratios)
}
