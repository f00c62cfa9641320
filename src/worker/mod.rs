//! The agent host's side of Nexus: `nexus worker`, a client of a node running beside
//! an agent, and `nexus mcp` ([`mcp`]), a bridge that makes an MCP client an agent.
//! It uploads the agent's finished sessions (`run`), says what it did (`status`) and
//! what it can reach (`check`), and hands an agent without a socket its events
//! (`pull`). It uses nothing of the node's internals: only its HTTP API, as the agent
//! whose client credentials it holds.

mod client;
mod config;
mod health;
pub mod mcp;
mod pull;
mod report;
mod runner;
mod scan;
mod state;
mod transcript;
mod upload;

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use self::config::{CommonArgs, FileConfig, SessionArgs};

#[derive(Debug, Subcommand)]
pub enum WorkerCmd {
    /// Upload finished sessions: backfill what exists, then watch (`--once`: one pass).
    Run(RunArgs),
    /// What the worker did: last scan and upload, queue, failures (from the state file).
    Status {
        #[command(flatten)]
        common: CommonArgs,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Whether the configured session paths, the state file and the node can be reached.
    Check {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        sessions: SessionArgs,
        #[arg(long)]
        json: bool,
    },
    /// Hand each of the agent's events to a command (JSON on stdin), acking on exit 0.
    Pull(PullArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    sessions: SessionArgs,
    /// Scan, upload what is finished, and exit: 0 only if no upload failed.
    #[arg(long)]
    once: bool,
    /// How often to look for finished sessions [default: 30s].
    #[arg(long, env = "NEXUS_WORKER_SCAN_INTERVAL", value_parser = humantime::parse_duration)]
    scan_interval: Option<Duration>,
    /// Uploads at a time [default: 4].
    #[arg(long, env = "NEXUS_WORKER_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: Option<u16>,
    /// Sessions per second while backfilling (0: no bound) [default: 20].
    #[arg(long, env = "NEXUS_WORKER_BACKFILL_RATE")]
    backfill_rate: Option<f64>,
    /// Attempts before a failing session is parked [default: 8].
    #[arg(long, env = "NEXUS_WORKER_MAX_ATTEMPTS")]
    max_attempts: Option<u32>,
    /// First retry delay, doubled per attempt with jitter [default: 5s].
    #[arg(long, env = "NEXUS_WORKER_RETRY_BASE", value_parser = humantime::parse_duration)]
    retry_base: Option<Duration>,
    /// Longest retry delay [default: 1h].
    #[arg(long, env = "NEXUS_WORKER_RETRY_CAP", value_parser = humantime::parse_duration)]
    retry_cap: Option<Duration>,
    /// Failures in a row that make the node alert (0: never) [default: 5].
    #[arg(long, env = "NEXUS_WORKER_ALERT_AFTER")]
    alert_after: Option<u32>,
    /// How often to report health to the node [default: 60s].
    #[arg(long, env = "NEXUS_WORKER_HEARTBEAT_INTERVAL", value_parser = humantime::parse_duration)]
    heartbeat_interval: Option<Duration>,
    /// Try parked sessions again.
    #[arg(long)]
    retry_parked: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The command run per event (`sh -c`), the event's JSON on its stdin.
    #[arg(long, env = "NEXUS_WORKER_EXEC")]
    exec: Option<String>,
    /// A command running longer is killed, and the event handed over again [default: 5m].
    #[arg(long, env = "NEXUS_WORKER_EXEC_TIMEOUT", value_parser = humantime::parse_duration)]
    exec_timeout: Option<Duration>,
    /// Seconds each poll waits for an event (0–30).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=30))]
    wait: u32,
    /// First retry delay after a failed command, doubled per failure [default: 5s].
    #[arg(long, env = "NEXUS_WORKER_RETRY_BASE", value_parser = humantime::parse_duration)]
    retry_base: Option<Duration>,
    /// Hand over the events there are, then exit: 0 only if every command succeeded.
    #[arg(long)]
    once: bool,
}

/// Runs a worker command; the exit status is failure when it says something failed.
pub async fn run(cmd: WorkerCmd) -> anyhow::Result<std::process::ExitCode> {
    let ok = match cmd {
        WorkerCmd::Run(args) => run_uploads(args).await?,
        WorkerCmd::Status { common, json } => {
            let file = FileConfig::load(common.config.as_deref())?;
            report::status(&config::state_file(&common, &file)?, json)?;
            true
        }
        WorkerCmd::Check {
            common,
            sessions,
            json,
        } => {
            let file = FileConfig::load(common.config.as_deref())?;
            let globs = config::globs(&sessions, &file)?;
            let quiet = quiet_period(&sessions, &file)?;
            let node = match common.url.is_some() || file.url.is_some() {
                true => Some(config::node_settings(&common, &file)?),
                false => None,
            };
            let state_file = config::state_file(&common, &file)?;
            report::check(&globs, quiet, &state_file, node, json).await?
        }
        WorkerCmd::Pull(args) => pull(args).await?,
    };
    Ok(match ok {
        true => std::process::ExitCode::SUCCESS,
        false => std::process::ExitCode::FAILURE,
    })
}

fn quiet_period(args: &SessionArgs, file: &FileConfig) -> anyhow::Result<Duration> {
    let five_minutes = Duration::from_secs(300);
    file.duration_or(
        args.quiet_period,
        &file.quiet_period,
        "quiet_period",
        five_minutes,
    )
}

async fn run_uploads(a: RunArgs) -> anyhow::Result<bool> {
    let file = FileConfig::load(a.common.config.as_deref())?;
    let (url, credentials) = config::node_settings(&a.common, &file)?;
    let settings = runner::RunSettings {
        url,
        credentials,
        state_file: config::state_file(&a.common, &file)?,
        globs: config::globs(&a.sessions, &file)?,
        quiet: quiet_period(&a.sessions, &file)?,
        scan_interval: file.duration_or(
            a.scan_interval,
            &file.scan_interval,
            "scan_interval",
            Duration::from_secs(30),
        )?,
        concurrency: a
            .concurrency
            .map(usize::from)
            .or(file.concurrency)
            .unwrap_or(4)
            .clamp(1, 64),
        backfill_rate: a.backfill_rate.or(file.backfill_rate).unwrap_or(20.0),
        policy: config::retry_policy(&file, a.retry_base, a.retry_cap, a.max_attempts)?,
        alert_after: a.alert_after.or(file.alert_after).unwrap_or(5),
        heartbeat_interval: file.duration_or(
            a.heartbeat_interval,
            &file.heartbeat_interval,
            "heartbeat_interval",
            Duration::from_secs(60),
        )?,
        once: a.once,
        retry_parked: a.retry_parked,
    };
    anyhow::ensure!(
        settings.backfill_rate.is_finite() && settings.backfill_rate >= 0.0,
        "--backfill-rate must be a number ≥ 0"
    );
    tracing::info!(
        node = settings.url,
        sessions = ?settings.globs.iter().map(|g| &g.glob).collect::<Vec<_>>(),
        state_file = %settings.state_file.display(),
        "worker starting"
    );
    runner::run(settings, stop_on_signal()).await
}

async fn pull(a: PullArgs) -> anyhow::Result<bool> {
    let file = FileConfig::load(a.common.config.as_deref())?;
    let (url, credentials) = config::node_settings(&a.common, &file)?;
    let exec = a
        .exec
        .or(file.exec.clone())
        .context("give the command to run per event: --exec CMD")?;
    let five_minutes = Duration::from_secs(300);
    let settings = pull::PullSettings {
        url,
        credentials,
        exec,
        exec_timeout: file.duration_or(
            a.exec_timeout,
            &file.exec_timeout,
            "exec_timeout",
            five_minutes,
        )?,
        wait: a.wait,
        policy: config::retry_policy(&file, a.retry_base, None, None)?,
        once: a.once,
    };
    pull::pull(settings, stop_on_signal()).await
}

/// Cancelled at SIGTERM or SIGINT: the worker finishes what it is doing and saves.
fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        crate::app::shutdown_signal().await;
        tracing::info!("stopping");
        token.cancel();
    });
    stop
}
