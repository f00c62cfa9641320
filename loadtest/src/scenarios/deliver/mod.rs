//! `deliver`: events at a fixed open-loop rate through the emit API (one
//! request per event, or batches: [`send`]), each addressed to one agent
//! (round robin). Latency runs from the event's *intended* send time to the
//! agent's read, so a stalled server cannot hide its backlog (no coordinated
//! omission). [`drive`] is the engine, shared with `cluster` (several
//! emitters, random addressees).

mod send;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

use crate::agents::{Delivery, unix_ns};
use crate::fleet::Fleet;
use crate::report::{Latency, histogram, num, record_us, table};
use crate::server::{Emitter, Fixture, Server};
use crate::target::Target;
pub use send::Batching;
use send::{Counters, Plan};

#[derive(Clone, Copy, Debug)]
pub struct DeliverOpts {
    pub rate: f64,
    pub duration: Duration,
    /// How long to wait for stragglers after the last send.
    pub drain: Duration,
    /// Requests in flight at most; past it sends wait (and count as late).
    pub max_in_flight: usize,
    /// How the events go in (for the report: the server is set up for it).
    pub via: Via,
    /// How `--via batch` groups events.
    pub batching: Batching,
}

/// `--via`: events through the emit API one per request, in batches
/// (`POST /api/events`), or as signed Slack or ClickUp webhooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Api,
    Batch,
    Slack,
    Clickup,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Batch => "batch",
            Via::Slack => "slack",
            Via::Clickup => "clickup",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DeliverReport {
    pub target: Target,
    pub via: Via,
    /// `--via batch`: events per request at most, and the longest wait.
    pub batch_size: Option<usize>,
    pub batch_wait_ms: Option<f64>,
    pub agents: usize,
    pub rate: f64,
    pub duration_s: f64,
    pub scheduled: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub first_error: Option<String>,
    pub accepted_per_s: f64,
    pub delivered: u64,
    pub delivered_per_s: f64,
    pub duplicates: u64,
    /// accepted − delivered after the drain timeout; must be 0.
    pub lost: i64,
    /// Intended send → agent read.
    pub latency: Latency,
    /// Intended send → HTTP 202.
    pub accept_latency: Latency,
    /// HTTP requests made (one per event, or one per batch).
    pub requests: u64,
    /// Requests that had to wait for a free in-flight slot.
    pub late_sends: u64,
    /// Server CPU (user + system, every server process) while sending and draining.
    pub server_cpu_s: Option<f64>,
    /// Server CPU per event: per delivered event for Nexus, per emit
    /// (`delivered: true` answer) for Socket.IO, in µs.
    pub server_cpu_us_per_event: Option<f64>,
    /// CPU of this client process (sender and, without workers, the sockets).
    pub client_cpu_s: f64,
}

/// Who carries event `k` to whom: `(emitter index, agent index)`.
pub type Pick = Arc<dyn Fn(u64) -> (usize, usize) + Send + Sync>;

/// The emitters and addressees of a run.
pub struct Targets {
    pub emitters: Vec<Emitter>,
    /// Agent ids in fleet order: a [`Delivery`]'s `agent` indexes them.
    pub agents: Arc<Vec<String>>,
    pub pick: Pick,
    /// Per agent, the emitter whose node holds its socket: a delivery is
    /// cross-node when its event went in through another one.
    pub home: Vec<usize>,
}

/// What a run measured, before a scenario reports it.
pub struct Outcome {
    pub scheduled: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub requests: u64,
    pub late: u64,
    pub first_error: Option<String>,
    pub accept_latency: Latency,
    pub accepted_per_s: f64,
    pub delivered: u64,
    pub delivered_per_s: f64,
    pub duplicates: u64,
    /// Events read by another agent than the one addressed (not counted as delivered).
    pub misrouted: u64,
    pub latency: Latency,
    pub cross_node: u64,
    pub cross_latency: Latency,
}

pub async fn run(
    server: &Server,
    fixture: &Fixture,
    fleet: &mut Fleet,
    opts: DeliverOpts,
) -> Result<DeliverReport> {
    let n = fixture.agent_ids.len();
    let targets = Targets {
        emitters: vec![server.emitter()],
        agents: Arc::new(fixture.agent_ids.clone()),
        pick: Arc::new(move |k| (0, (k % n.max(1) as u64) as usize)),
        home: vec![0; n],
    };
    let cpu_before = server.cpu_s()?;
    let client_before = crate::proc::sample(std::process::id())?;
    let out = drive(targets, fleet, opts).await?;
    let cpu_after = server.cpu_s()?;
    let client_after = crate::proc::sample(std::process::id())?;
    Ok(DeliverReport::new(
        server.target,
        n,
        opts,
        &out,
        cpu_before.zip(cpu_after).map(|(b, a)| a - b),
        client_after.cpu_s - client_before.cpu_s,
    ))
}

/// Sends `rate × duration` events as `targets.pick` says and collects them
/// from `fleet` until all accepted ones arrived or `opts.drain` passed.
pub async fn drive(targets: Targets, fleet: &mut Fleet, opts: DeliverOpts) -> Result<Outcome> {
    if opts.rate <= 0.0 || targets.agents.is_empty() || targets.emitters.is_empty() {
        bail!("deliver needs a positive --rate and at least one agent");
    }
    while fleet.rx.try_recv().is_ok() {}
    let total = (opts.rate * opts.duration.as_secs_f64()).round() as u64;
    let counters = Arc::new(Counters::new()?);
    let start = Instant::now() + Duration::from_millis(100);
    let start_unix = unix_ns() + 100_000_000;
    let plan = Plan {
        emitters: Arc::new(targets.emitters),
        agents: targets.agents,
        pick: targets.pick.clone(),
        total,
        start,
        start_unix,
        counters: counters.clone(),
    };
    let sender = tokio::spawn(send::schedule(plan, opts));
    let mut got = Collector::new(total, targets.pick, targets.home, start_unix)?;
    let mut sender = std::pin::pin!(sender);
    let send_elapsed = loop {
        tokio::select! {
            Some(d) = fleet.rx.recv() => got.record(d),
            done = &mut sender => break done??,
        }
    };
    let accepted = counters.accepted.load(Ordering::Relaxed);
    let drain_until = Instant::now() + opts.drain;
    while got.delivered < accepted {
        match tokio::time::timeout_at(drain_until, fleet.rx.recv()).await {
            Ok(Some(d)) => got.record(d),
            _ => break,
        }
    }
    while let Ok(d) = fleet.rx.try_recv() {
        got.record(d);
    }
    let accept_latency = counters
        .accept_hist
        .lock()
        .map(|h| Latency::from_histogram(&h))
        .unwrap_or_default();
    let first_error = counters.first_error.lock().ok().and_then(|e| e.clone());
    Ok(Outcome {
        scheduled: total,
        accepted,
        rejected: counters.rejected.load(Ordering::Relaxed),
        requests: counters.requests.load(Ordering::Relaxed),
        late: counters.late.load(Ordering::Relaxed),
        first_error,
        accept_latency,
        accepted_per_s: accepted as f64 / send_elapsed.as_secs_f64().max(1e-9),
        delivered: got.delivered,
        delivered_per_s: got.delivered as f64
            / (got.last_recv.saturating_sub(start_unix) as f64 / 1e9).max(1e-9),
        duplicates: got.duplicates,
        misrouted: got.misrouted,
        latency: Latency::from_histogram(&got.hist),
        cross_node: got.cross_hist.len(),
        cross_latency: Latency::from_histogram(&got.cross_hist),
    })
}

/// Unique deliveries by event number, and their latencies (all, and those
/// that crossed nodes).
struct Collector {
    seen: Vec<bool>,
    pick: Pick,
    home: Vec<usize>,
    hist: Histogram<u64>,
    cross_hist: Histogram<u64>,
    delivered: u64,
    duplicates: u64,
    misrouted: u64,
    last_recv: u64,
}

impl Collector {
    fn new(total: u64, pick: Pick, home: Vec<usize>, start_unix: u64) -> Result<Collector> {
        Ok(Collector {
            seen: vec![false; total as usize],
            pick,
            home,
            hist: histogram()?,
            cross_hist: histogram()?,
            delivered: 0,
            duplicates: 0,
            misrouted: 0,
            last_recv: start_unix,
        })
    }

    fn record(&mut self, d: Delivery) {
        let Some(slot) = self.seen.get_mut(d.i as usize) else {
            return;
        };
        let (sender, agent) = (self.pick)(d.i);
        if agent != d.agent as usize {
            self.misrouted += 1;
            return;
        }
        if *slot {
            self.duplicates += 1;
            return;
        }
        *slot = true;
        self.delivered += 1;
        self.last_recv = self.last_recv.max(d.recv_ns);
        let us = d.recv_ns.saturating_sub(d.t_ns) / 1000;
        record_us(&mut self.hist, us);
        if self.home.get(agent) != Some(&sender) {
            record_us(&mut self.cross_hist, us);
        }
    }
}

impl DeliverReport {
    pub fn new(
        target: Target,
        agents: usize,
        opts: DeliverOpts,
        out: &Outcome,
        server_cpu_s: Option<f64>,
        client_cpu_s: f64,
    ) -> DeliverReport {
        let batch = (opts.via == Via::Batch).then_some(opts.batching);
        // A Socket.IO emit is one answer `delivered: true`; a Nexus event
        // counts once an agent has read it.
        let events = match target {
            Target::Nexus => out.delivered,
            Target::Socketio => out.accepted,
        };
        DeliverReport {
            target,
            via: opts.via,
            batch_size: batch.map(|b| b.size),
            batch_wait_ms: batch.map(|b| b.max_wait.as_secs_f64() * 1e3),
            agents,
            rate: opts.rate,
            duration_s: opts.duration.as_secs_f64(),
            scheduled: out.scheduled,
            accepted: out.accepted,
            rejected: out.rejected,
            first_error: out.first_error.clone(),
            accepted_per_s: out.accepted_per_s,
            delivered: out.delivered,
            delivered_per_s: out.delivered_per_s,
            duplicates: out.duplicates,
            lost: out.accepted as i64 - out.delivered as i64,
            latency: out.latency.clone(),
            accept_latency: out.accept_latency.clone(),
            requests: out.requests,
            late_sends: out.late,
            server_cpu_s,
            server_cpu_us_per_event: server_cpu_s
                .filter(|_| events > 0)
                .map(|s| s * 1e6 / events as f64),
            client_cpu_s,
        }
    }

    pub fn table(&self) -> String {
        let via = match (self.batch_size, self.batch_wait_ms) {
            (Some(size), Some(wait)) => format!(
                "batch: ≤ {size} events per request or every {} ms",
                num(wait)
            ),
            _ => self.via.name().to_owned(),
        };
        let mut rows = vec![
            (
                "load",
                format!(
                    "{} agents · {} events/s for {} s (via {via})",
                    num(self.agents as f64),
                    num(self.rate),
                    num(self.duration_s),
                ),
            ),
            (
                "scheduled / accepted / rejected",
                format!("{} / {} / {}", self.scheduled, self.accepted, self.rejected),
            ),
            ("accepted/s", num(self.accepted_per_s)),
            ("delivered", self.delivered.to_string()),
            ("delivered/s", num(self.delivered_per_s)),
            ("lost (must be 0)", self.lost.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("accept→deliver", self.latency.line()),
            ("send→accepted", self.accept_latency.line()),
            (
                "requests (late)",
                format!("{} ({})", self.requests, self.late_sends),
            ),
            (
                "server CPU",
                match (self.server_cpu_s, self.server_cpu_us_per_event) {
                    (Some(s), Some(us)) => format!("{} s · {} µs per event", num(s), num(us)),
                    (Some(s), None) => format!("{} s", num(s)),
                    _ => "– (no pid)".into(),
                },
            ),
            ("client CPU", format!("{} s", num(self.client_cpu_s))),
        ];
        if let Some(e) = &self.first_error {
            rows.push(("first error", e.clone()));
        }
        table(&format!("deliver · {}", self.target.name()), &rows)
    }
}
