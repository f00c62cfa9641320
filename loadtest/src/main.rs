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
//!    Socket.IO baseline), [`wire`] (the agent socket: its WebSocket type,
//!    the load-test stamp, the Socket.IO framing), [`pin`] (CPU lists and
//!    `taskset`), [`proc`] (child processes and their `/proc` readings),
//!    [`jwt`] (agent tokens), [`net`] (the HTTP client and the loopback-only
//!    rule), [`report`] (histograms, tables and JSON).
//! 2. The system under test: [`node`] (a Nexus node and its CLI), [`peer`]
//!    (the Socket.IO peer process), [`fake_clickup`] (the ClickUp API that
//!    `--via clickup` reads), [`webhooks`] (events as signed Slack and
//!    ClickUp webhooks), and [`server`] over them (start, provision, sample,
//!    emit), all scenarios see of it.
//! 3. The clients: [`agents`] (one simulated agent: open, read, ack),
//!    [`fleet`] (many of them, in this process or in worker subprocesses),
//!    [`worker`] (the hidden subcommand such a subprocess runs).
//! 4. The measurements: [`scenarios`] (`connect`, `deliver`, `fanout`,
//!    `compare`, `cluster`, `sessions`, `usage-query`), [`cli`] (the subcommands and their flags), then
//!    `main.rs`, which runs them.

mod agents;
mod cli;
mod fake_clickup;
mod fleet;
mod jwt;
mod net;
mod node;
mod peer;
mod pin;
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
use clap::Parser;
use serde_json::json;

use cli::{Cli, Cmd, Common, Load};
use fake_clickup::FakeClickUp;
use scenarios::cluster::{self, ClusterOpts};
use scenarios::compare::{self, CompareOpts};
use scenarios::deliver::{DeliverOpts, Via};
use scenarios::sessions::SessionsOpts;
use scenarios::usage_query::{self, UsageQueryOpts};
use scenarios::{connect, deliver, fanout, sessions};
use server::{Server, ServerOpts};

/// Most open files a process may hold here (a hard limit).
const NOFILE: u64 = 20_000;

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Err(e) = rlimit::increase_nofile_limit(NOFILE) {
        eprintln!("warning: could not raise the open-file limit: {e}");
    }
    let pinning = cli.cmd.pinning();
    pinning.pin_self()?;
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
            fanout_timeout_s,
            nexus_only,
            peer_only,
            pin: _,
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
                fanout_timeout: Duration::from_secs(fanout_timeout_s),
                nexus: !peer_only,
                peer: !nexus_only,
                pinning,
            };
            let report = cluster::run(&opts).await?;
            print!("{}", report.table());
            report::write_json(out.as_deref(), &report)
        }
        Cmd::UsageQuery {
            rows,
            agents,
            days,
            runs,
            database_url,
            out,
        } => {
            let opts = UsageQueryOpts {
                rows,
                agents,
                days,
                runs,
                database_url,
            };
            let report = usage_query::run(&opts).await?;
            print!("{}", report.table());
            report::write_json(out.as_deref(), &report)
        }
        Cmd::Connect {
            common,
            agents,
            hold_s,
        } => run_connect(common, agents, Duration::from_secs(hold_s)).await,
        Cmd::Deliver { common, load, via } => {
            if via == Via::Batch && common.target != target::Target::Nexus {
                bail!("--via batch posts to the Nexus batch API (POST /api/events) only");
            }
            run_deliver(common, load, via).await
        }
        Cmd::Fanout {
            common,
            agents,
            timeout_s,
        } => run_fanout(common, agents, Duration::from_secs(timeout_s)).await,
        Cmd::Sessions {
            common,
            clients,
            duration,
            transcript_bytes,
        } => {
            let opts = SessionsOpts {
                clients: clients.max(1),
                duration: Duration::from_secs_f64(duration.max(0.1)),
                transcript_bytes: transcript_bytes.min(1024 * 1024),
            };
            run_sessions(common, opts).await
        }
        Cmd::Compare {
            client,
            load,
            rounds,
            no_fanout,
            pin: _,
            out,
        } => {
            let load = Load::from(load);
            let opts = CompareOpts {
                agents: load.agents,
                rounds,
                deliver: load.opts(),
                client: client.opts(),
                fanout: !no_fanout,
                pinning,
            };
            run_compare(opts, load, out).await
        }
    }
}

/// `sessions`: uploads sessions as fast as `opts.clients` agents get answers.
async fn run_sessions(common: Common, opts: SessionsOpts) -> Result<()> {
    if common.target != target::Target::Nexus {
        bail!("sessions measures Nexus only");
    }
    let mut server = Server::start(common.target, &common.server_opts()).await?;
    let result = async {
        let fixture = server.provision(opts.clients).await?;
        let report = sessions::run(&server, &fixture, &opts).await?;
        print!("{}", report.table());
        report::write_json_pinned(common.out.as_deref(), &report, &common.pin.pinning())
    }
    .await;
    finish(server, result).await
}

/// `connect`: opens the sockets, reports, holds them `hold` longer.
async fn run_connect(common: Common, agents: usize, hold: Duration) -> Result<()> {
    let mut server = Server::start(common.target, &common.server_opts()).await?;
    let result = async {
        let fixture = server.provision(agents).await?;
        let (report, fleet) = connect::run(&server, &fixture, &common.client.opts()).await?;
        print!("{}", report.table());
        report::write_json_pinned(common.out.as_deref(), &report, &common.pin.pinning())?;
        tokio::time::sleep(hold).await;
        fleet.close().await;
        anyhow::Ok(())
    }
    .await;
    finish(server, result).await
}

/// `deliver`: connects, then sends events through the API or as webhooks.
async fn run_deliver(common: Common, load: Load, via: Via) -> Result<()> {
    let mut server_opts = common.server_opts();
    let clickup = match via {
        Via::Clickup => Some(start_fake_clickup(&mut server_opts).await?),
        _ => None,
    };
    let mut server = Server::start(common.target, &server_opts).await?;
    let result = deliver_on(&mut server, &common, &load, via, clickup.as_ref()).await;
    finish(server, result).await
}

/// `--via clickup` points the node it starts at a fake ClickUp API.
async fn start_fake_clickup(server_opts: &mut ServerOpts) -> Result<FakeClickUp> {
    if server_opts.url.is_some() {
        bail!("--via clickup starts its own node (pointed at a fake ClickUp API); drop --url");
    }
    let api = FakeClickUp::start().await?;
    server_opts.clickup_api_url = Some(api.url.clone());
    Ok(api)
}

async fn deliver_on(
    server: &mut Server,
    common: &Common,
    load: &Load,
    via: Via,
    clickup: Option<&FakeClickUp>,
) -> Result<()> {
    let fixture = server.provision(load.agents).await?;
    match (via, clickup) {
        (Via::Api | Via::Batch, _) => {}
        (Via::Slack, _) => server.route_via_slack(&fixture).await?,
        (Via::Clickup, Some(api)) => server.route_via_clickup(&fixture, api).await?,
        (Via::Clickup, None) => bail!("--via clickup without a fake ClickUp API"),
    }
    let opts = DeliverOpts { via, ..load.opts() };
    let (connected, mut fleet) = connect::run(server, &fixture, &common.client.opts()).await?;
    let report = deliver::run(server, &fixture, &mut fleet, opts).await?;
    print!("{}{}", connected.table(), report.table());
    let mut json = json!({"connect": connected, "deliver": report});
    if let Some(api) = clickup {
        let (served, refused) = api.counts();
        println!("fake ClickUp API: {served} task reads answered, {refused} refused");
        json["fake_clickup"] = json!({"task_reads": served, "refused": refused});
    }
    report::write_json_pinned(common.out.as_deref(), &json, &common.pin.pinning())?;
    fleet.close().await;
    Ok(())
}

/// `fanout`: connects, then one tenant-wide event.
async fn run_fanout(common: Common, agents: usize, timeout: Duration) -> Result<()> {
    let mut server = Server::start(common.target, &common.server_opts()).await?;
    let result = async {
        let fixture = server.provision(agents).await?;
        let (connected, mut fleet) = connect::run(&server, &fixture, &common.client.opts()).await?;
        let report = fanout::run(&server, &fixture, &mut fleet, timeout).await?;
        print!("{}{}", connected.table(), report.table());
        report::write_json_pinned(
            common.out.as_deref(),
            &json!({"connect": connected, "fanout": report}),
            &common.pin.pinning(),
        )?;
        fleet.close().await;
        anyhow::Ok(())
    }
    .await;
    finish(server, result).await
}

/// `compare`: both targets, alternating, then the side-by-side table.
async fn run_compare(opts: CompareOpts, load: Load, out: Option<PathBuf>) -> Result<()> {
    let report = compare::run(&opts).await?;
    println!(
        "\nNexus vs Socket.IO ({} agents, {} events/s for {} s, {} round(s); pinning: {})\n",
        load.agents,
        load.rate,
        load.duration,
        opts.rounds,
        opts.pinning.describe()
    );
    print!("{}", report.markdown);
    report::write_json(out.as_deref(), &report)
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
