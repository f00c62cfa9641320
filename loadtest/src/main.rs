//! `nexus-loadtest`: measures a Nexus node and the Socket.IO baseline with
//! the same client code. `cargo run --release -p nexus-loadtest -- compare`
//! is the one command a user needs.
//!
//! # Layout
//!
//! The modules in layers, bottom first. A module imports only modules linked
//! before it in this list, never one after it: imports point down and cannot
//! form cycles. A type two layers need lives in the lower one.
//! `tests/layers.rs` reads this list and checks every `crate::` path.
//!
//! 1. Helpers, which import no other module: [`target`] (Nexus or the
//!    Socket.IO baseline), [`wire`] (the agent socket: its WebSocket type and
//!    the Socket.IO framing), [`proc`] (child processes and their `/proc`
//!    readings), [`jwt`] (agent tokens), [`net`] (the HTTP client and the
//!    loopback-only rule), [`report`] (histograms, tables and JSON).
//! 2. The system under test: [`node`] (a Nexus node and its CLI), [`peer`]
//!    (the Socket.IO peer process), [`fake_clickup`] (the ClickUp API that
//!    `--via clickup` reads), [`webhooks`] (events as signed Slack and
//!    ClickUp webhooks), and [`server`] over them (start, provision, sample,
//!    emit), all scenarios see of it.
//! 3. The clients: [`agents`] (one simulated agent: open, read, ack),
//!    [`fleet`] (many of them, in this process or in worker subprocesses),
//!    [`worker`] (the hidden subcommand such a subprocess runs).
//! 4. The measurements: [`scenarios`] (`connect`, `deliver`, `fanout`,
//!    `compare`, `cluster`), then `main.rs` (the command line).

mod agents;
mod fake_clickup;
mod fleet;
mod jwt;
mod net;
mod node;
mod peer;
mod proc;
mod report;
mod scenarios;
mod server;
mod target;
mod webhooks;
mod wire;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use scenarios::ClientOpts;
use scenarios::cluster::{self, ClusterOpts};
use scenarios::compare::{self, CompareOpts};
use scenarios::deliver::DeliverOpts;
use scenarios::{connect, deliver, fanout};
use server::{Server, ServerOpts};
use target::Target;

/// Most open files a process may hold here (a hard limit).
const NOFILE: u64 = 20_000;

#[derive(Parser)]
#[command(
    name = "nexus-loadtest",
    version,
    about = "Load tests for Nexus and its Socket.IO baseline (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open N agent sockets; connects/s and server RSS per idle connection.
    Connect {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        /// Keep the sockets open this long after measuring (for inspection).
        #[arg(long, default_value_t = 0)]
        hold_s: u64,
    },
    /// Events at a fixed open-loop rate; accept→deliver latency, lost = 0.
    Deliver {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        #[arg(long, value_enum, default_value_t = Via::Api)]
        via: Via,
    },
    /// One tenant-wide event; time until the last agent has it.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        agents: usize,
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
    },
    /// connect + deliver (+ one fan-out) against Nexus and Socket.IO, alternating.
    Compare {
        #[command(flatten)]
        client: Client,
        #[command(flatten)]
        load: CompareLoad,
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Skip the fan-out measurement.
        #[arg(long)]
        no_fanout: bool,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// K nodes on PostgreSQL + Redis: cross-node delivery, RSS per node,
    /// offline detection after one node is SIGKILLed.
    Cluster {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[command(flatten)]
        load: Load,
        #[command(flatten)]
        client: Client,
        /// PostgreSQL (loopback) for the nodes; the run makes its own schema there and drops it.
        #[arg(
            long,
            env = "DATABASE_URL",
            hide_env_values = true,
            default_value = "postgres://postgres@127.0.0.1:5432/test"
        )]
        database_url: String,
        /// Redis (loopback) for presence and cross-node routing.
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
        /// The nodes' NEXUS_NODE_TTL, in seconds.
        #[arg(long, default_value_t = 15)]
        node_ttl_s: u64,
        /// Gives up waiting for the killed node's agents to go offline after this long.
        #[arg(long, default_value_t = 60)]
        offline_timeout_s: u64,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Via {
    Api,
    Slack,
    Clickup,
}

#[derive(Args, Clone, Debug)]
struct Client {
    /// Sockets opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Sockets per client process; more are spread over worker subprocesses.
    #[arg(long, default_value_t = 15_000)]
    per_process: usize,
    /// Seconds to wait after the last welcome before reading server RSS.
    #[arg(long, default_value_t = 2.0)]
    settle_s: f64,
}

impl Client {
    fn opts(&self) -> ClientOpts {
        ClientOpts {
            concurrency: self.concurrency,
            per_process: self.per_process.min(15_000),
            settle: Duration::from_secs_f64(self.settle_s.max(0.0)),
        }
    }
}

#[derive(Args, Clone, Debug)]
struct Common {
    #[arg(long, value_enum, default_value_t = Target::Nexus)]
    target: Target,
    /// A running server (loopback only) instead of one started here.
    #[arg(long)]
    url: Option<String>,
    /// With --url: the server's token secret.
    #[arg(long, env = "NEXUS_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// With --url and Nexus: the node's database, for provisioning.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// With --url: the server's pid, for RSS and CPU readings.
    #[arg(long)]
    pid: Option<u32>,
    /// Write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    client: Client,
}

impl Common {
    fn server_opts(&self) -> ServerOpts {
        ServerOpts {
            url: self.url.clone(),
            jwt_secret: self.jwt_secret.clone(),
            database_url: self.database_url.clone(),
            pid: self.pid,
            clickup_api_url: None,
        }
    }
}

#[derive(Args, Clone, Debug)]
struct Load {
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// Events per second (open loop).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait for stragglers after the last send.
    #[arg(long, default_value_t = 10.0)]
    drain_s: f64,
    /// Emit requests in flight at most.
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
}

/// `compare`'s load: the same knobs as [`Load`], with defaults sized to
/// finish both targets in a few minutes on 2 cores.
#[derive(Args, Clone, Debug)]
struct CompareLoad {
    #[arg(long, default_value_t = 2000)]
    agents: usize,
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 10.0)]
    drain_s: f64,
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
}

impl From<CompareLoad> for Load {
    fn from(c: CompareLoad) -> Load {
        Load {
            agents: c.agents,
            rate: c.rate,
            duration: c.duration,
            drain_s: c.drain_s,
            max_in_flight: c.max_in_flight,
        }
    }
}

impl Load {
    fn opts(&self) -> DeliverOpts {
        DeliverOpts {
            rate: self.rate,
            duration: Duration::from_secs_f64(self.duration.max(0.0)),
            drain: Duration::from_secs_f64(self.drain_s.max(0.0)),
            max_in_flight: self.max_in_flight,
            via: "api",
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Err(e) = rlimit::increase_nofile_limit(NOFILE) {
        eprintln!("warning: could not raise the open-file limit: {e}");
    }
    match cli.cmd {
        Cmd::Worker(args) => worker::run(args).await,
        Cmd::Cluster {
            nodes,
            load,
            client,
            database_url,
            redis_url,
            node_ttl_s,
            offline_timeout_s,
            out,
        } => {
            let opts = ClusterOpts {
                nodes,
                agents: load.agents,
                deliver: load.opts(),
                client: client.opts(),
                database_url,
                redis_url,
                node_ttl: Duration::from_secs(node_ttl_s),
                offline_timeout: Duration::from_secs(offline_timeout_s),
            };
            let report = cluster::run(&opts).await?;
            print!("{}", report.table());
            report::write_json(out.as_deref(), &report)
        }
        Cmd::Connect {
            common,
            agents,
            hold_s,
        } => {
            let mut server = Server::start(common.target, &common.server_opts()).await?;
            let result = async {
                let fixture = server.provision(agents).await?;
                let (report, fleet) =
                    connect::run(&server, &fixture, &common.client.opts()).await?;
                print!("{}", report.table());
                report::write_json(common.out.as_deref(), &report)?;
                tokio::time::sleep(Duration::from_secs(hold_s)).await;
                fleet.close().await;
                anyhow::Ok(())
            }
            .await;
            finish(server, result).await
        }
        Cmd::Deliver { common, load, via } => {
            let mut server_opts = common.server_opts();
            let clickup = match via {
                Via::Clickup => {
                    if server_opts.url.is_some() {
                        bail!(
                            "--via clickup starts its own node (pointed at a fake ClickUp API); drop --url"
                        );
                    }
                    let api = fake_clickup::FakeClickUp::start().await?;
                    server_opts.clickup_api_url = Some(api.url.clone());
                    Some(api)
                }
                _ => None,
            };
            let mut server = Server::start(common.target, &server_opts).await?;
            let result = async {
                let fixture = server.provision(load.agents).await?;
                let mut opts = load.opts();
                match (via, &clickup) {
                    (Via::Slack, _) => {
                        server.route_via_slack(&fixture).await?;
                        opts.via = "slack";
                    }
                    (Via::Clickup, Some(api)) => {
                        server.route_via_clickup(&fixture, api).await?;
                        opts.via = "clickup";
                    }
                    _ => {}
                }
                let (connected, mut fleet) =
                    connect::run(&server, &fixture, &common.client.opts()).await?;
                let report = deliver::run(&server, &fixture, &mut fleet, opts).await?;
                print!("{}{}", connected.table(), report.table());
                let mut json = json!({"connect": connected, "deliver": report});
                if let Some(api) = &clickup {
                    let (served, refused) = api.counts();
                    println!("fake ClickUp API: {served} task reads answered, {refused} refused");
                    json["fake_clickup"] = json!({"task_reads": served, "refused": refused});
                }
                report::write_json(common.out.as_deref(), &json)?;
                fleet.close().await;
                anyhow::Ok(())
            }
            .await;
            finish(server, result).await
        }
        Cmd::Fanout {
            common,
            agents,
            timeout_s,
        } => {
            let mut server = Server::start(common.target, &common.server_opts()).await?;
            let result = async {
                let fixture = server.provision(agents).await?;
                let (connected, mut fleet) =
                    connect::run(&server, &fixture, &common.client.opts()).await?;
                let report = fanout::run(
                    &server,
                    &fixture,
                    &mut fleet,
                    Duration::from_secs(timeout_s),
                )
                .await?;
                print!("{}{}", connected.table(), report.table());
                report::write_json(
                    common.out.as_deref(),
                    &json!({"connect": connected, "fanout": report}),
                )?;
                fleet.close().await;
                anyhow::Ok(())
            }
            .await;
            finish(server, result).await
        }
        Cmd::Compare {
            client,
            load,
            rounds,
            no_fanout,
            out,
        } => {
            let load = Load::from(load);
            let opts = CompareOpts {
                agents: load.agents,
                rounds,
                deliver: load.opts(),
                client: client.opts(),
                fanout: !no_fanout,
            };
            let report = compare::run(&opts).await?;
            println!(
                "\nNexus vs Socket.IO ({} agents, {} events/s for {} s, {} round(s))\n",
                load.agents, load.rate, load.duration, rounds
            );
            print!("{}", report.markdown);
            report::write_json(out.as_deref(), &report)
        }
    }
}

/// Stops the server the tool started, showing its log tail on failure.
async fn finish(server: Server, result: Result<()>) -> Result<()> {
    if result.is_err() {
        let tail = server.log_tail();
        if !tail.is_empty() {
            eprintln!("server log tail:\n{tail}");
        }
    }
    server.stop().await?;
    result
}
