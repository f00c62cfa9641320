//! The command line: subcommands and their flags (`main.rs` runs them).
//! Reports, `report.sh` and RESULTS.md rely on these names and defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::pin::{CpuList, Pinning};
use crate::scenarios::ClientOpts;
use crate::scenarios::deliver::{Batching, DeliverOpts, Via};
use crate::server::ServerOpts;
use crate::target::Target;
use crate::worker;

#[derive(Parser)]
#[command(
    name = "nexus-loadtest",
    version,
    about = "Load tests for Nexus and its Socket.IO baseline (loopback only)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
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
    /// `POST /api/sessions` closed-loop (Nexus only): sessions stored per second.
    Sessions {
        #[command(flatten)]
        common: Common,
        /// Agents, each uploading its own sessions; also the clients in flight.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Each session's transcript, in bytes (at most 1 MiB).
        #[arg(long, default_value_t = 16_384)]
        transcript_bytes: usize,
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
        #[command(flatten)]
        pin: Pin,
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
        /// Gives up waiting for the fan-out's last agent after this long.
        #[arg(long, default_value_t = 60)]
        fanout_timeout_s: u64,
        /// Only the Nexus nodes (no Socket.IO redis-adapter baseline).
        #[arg(long, conflicts_with = "peer_only")]
        nexus_only: bool,
        /// Only the Socket.IO redis-adapter baseline.
        #[arg(long)]
        peer_only: bool,
        #[command(flatten)]
        pin: Pin,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Seeds N `session_usage` rows (100 agents over 90 days by default), then times
    /// `GET /api/usage` over the last 30 days grouped by day, model and agent.
    UsageQuery {
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 100)]
        agents: usize,
        #[arg(long, default_value_t = 90)]
        days: i64,
        /// Requests per grouping.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// PostgreSQL (loopback): the run makes its own schema there and drops it.
        /// Unset: a SQLite file in a temp directory.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

impl Cmd {
    /// The pinning asked for (none for subcommands without the flags).
    pub fn pinning(&self) -> Pinning {
        match self {
            Cmd::Connect { common, .. }
            | Cmd::Deliver { common, .. }
            | Cmd::Fanout { common, .. }
            | Cmd::Sessions { common, .. } => common.pin.pinning(),
            Cmd::Compare { pin, .. } | Cmd::Cluster { pin, .. } => pin.pinning(),
            Cmd::UsageQuery { .. } | Cmd::Worker(_) => Pinning::default(),
        }
    }
}

/// `--node-cpus` / `--client-cpus`.
#[derive(Args, Clone, Debug)]
pub struct Pin {
    /// Run the server process(es) the tool starts on these CPUs (a `taskset -c`
    /// list, e.g. `0`); Nexus and the Socket.IO peer alike.
    #[arg(long, value_parser = CpuList::parse)]
    node_cpus: Option<CpuList>,
    /// Run this tool and its client worker processes on these CPUs (e.g. `1`).
    #[arg(long, value_parser = CpuList::parse)]
    client_cpus: Option<CpuList>,
}

impl Pin {
    pub fn pinning(&self) -> Pinning {
        Pinning {
            node_cpus: self.node_cpus.clone(),
            client_cpus: self.client_cpus.clone(),
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct Client {
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
    pub fn opts(&self) -> ClientOpts {
        ClientOpts {
            concurrency: self.concurrency,
            per_process: self.per_process.min(15_000),
            settle: Duration::from_secs_f64(self.settle_s.max(0.0)),
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct Common {
    #[arg(long, value_enum, default_value_t = Target::Nexus)]
    pub target: Target,
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
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub client: Client,
    #[command(flatten)]
    pub pin: Pin,
}

impl Common {
    pub fn server_opts(&self) -> ServerOpts {
        ServerOpts {
            url: self.url.clone(),
            jwt_secret: self.jwt_secret.clone(),
            database_url: self.database_url.clone(),
            pid: self.pid,
            clickup_api_url: None,
            pinning: self.pin.pinning(),
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct Load {
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    /// Events per second (open loop).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds to wait for stragglers after the last send.
    #[arg(long, default_value_t = 10.0)]
    drain_s: f64,
    /// Emit requests in flight at most.
    #[arg(long, default_value_t = 512)]
    max_in_flight: usize,
    /// `--via batch`: events per `POST /api/events` at most (1 to 1,000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    batch_size: u16,
    /// `--via batch`: a batch goes out at the latest this long after its first
    /// event was due, full or not.
    #[arg(long, default_value_t = 5.0)]
    batch_wait_ms: f64,
}

/// `compare`'s load: the same knobs as [`Load`], with defaults sized to
/// finish both targets in a few minutes on 2 cores.
#[derive(Args, Clone, Debug)]
pub struct CompareLoad {
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
            batch_size: 100,
            batch_wait_ms: 5.0,
        }
    }
}

impl Load {
    pub fn opts(&self) -> DeliverOpts {
        DeliverOpts {
            rate: self.rate,
            duration: Duration::from_secs_f64(self.duration.max(0.0)),
            drain: Duration::from_secs_f64(self.drain_s.max(0.0)),
            max_in_flight: self.max_in_flight,
            via: Via::Api,
            batching: Batching {
                size: usize::from(self.batch_size),
                max_wait: Duration::from_secs_f64(self.batch_wait_ms.max(0.0) / 1e3),
            },
        }
    }
}
