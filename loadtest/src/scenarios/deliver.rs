//! `deliver`: events at a fixed open-loop rate through the emit API, each
//! addressed to one agent (round robin). Latency runs from the event's
//! *intended* send time to the agent's read, so a stalled server cannot hide
//! its backlog (no coordinated omission). [`drive`] is the engine, shared with
//! `cluster` (several emitters, random addressees).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::agents::{Delivery, unix_ns};
use crate::fleet::Fleet;
use crate::report::{Latency, histogram, num, record_us, table};
use crate::server::{Emitter, Fixture, Server};
use crate::target::Target;

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
}

/// `--via`: events through the emit API, or as signed Slack or ClickUp
/// webhooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Api,
    Slack,
    Clickup,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Slack => "slack",
            Via::Clickup => "clickup",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DeliverReport {
    pub target: Target,
    pub via: Via,
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
    /// Sends that had to wait for a free in-flight slot.
    pub late_sends: u64,
    pub server_cpu_s: Option<f64>,
    /// CPU of this client process (sender and, without workers, the sockets).
    pub client_cpu_s: f64,
}

struct Counters {
    accepted: AtomicU64,
    rejected: AtomicU64,
    late: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Intended send → HTTP 202.
    accept_hist: Mutex<Histogram<u64>>,
}

impl Counters {
    fn new() -> Result<Counters> {
        Ok(Counters {
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            late: AtomicU64::new(0),
            first_error: Mutex::new(None),
            accept_hist: Mutex::new(histogram()?),
        })
    }
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
    let cpu_before = server.sample().await?;
    let client_before = crate::proc::sample(std::process::id())?;
    let out = drive(targets, fleet, opts).await?;
    let cpu_after = server.sample().await?;
    let client_after = crate::proc::sample(std::process::id())?;
    Ok(DeliverReport::new(
        server.target,
        n,
        opts,
        &out,
        cpu_before.zip(cpu_after).map(|(b, a)| a.cpu_s - b.cpu_s),
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
    let sender = tokio::spawn(schedule(
        Arc::new(targets.emitters),
        targets.agents,
        targets.pick.clone(),
        total,
        opts,
        (start, start_unix),
        counters.clone(),
    ));
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

/// Issues event `k` at `start + k/rate`, each request on its own task so a
/// slow answer never delays the schedule. Returns the time from `start` to
/// the last answer.
async fn schedule(
    emitters: Arc<Vec<Emitter>>,
    agents: Arc<Vec<String>>,
    pick: Pick,
    total: u64,
    opts: DeliverOpts,
    (start, start_unix): (Instant, u64),
    counters: Arc<Counters>,
) -> Result<Duration> {
    let period_ns = 1e9 / opts.rate;
    let slots = Arc::new(Semaphore::new(opts.max_in_flight.max(1)));
    let intended = |k: u64| (k as f64 * period_ns) as u64;
    let mut k = 0u64;
    while k < total {
        tokio::time::sleep_until(start + Duration::from_nanos(intended(k))).await;
        let elapsed = Instant::now().saturating_duration_since(start).as_nanos() as f64;
        let due = ((elapsed / period_ns).floor() as u64 + 1).min(total);
        while k < due {
            let permit = match slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    counters.late.fetch_add(1, Ordering::Relaxed);
                    slots.clone().acquire_owned().await?
                }
            };
            let t_ns = start_unix + intended(k);
            let (sender, agent) = pick(k);
            let emitter = emitters[sender].clone();
            let agent = agents[agent].clone();
            let counters = counters.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let result = emitter
                    .emit_agent(&agent, json!({"t_ns": t_ns, "i": k}))
                    .await;
                let took_us = unix_ns().saturating_sub(t_ns) / 1000;
                match result {
                    Ok(true) => {
                        counters.accepted.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut h) = counters.accept_hist.lock() {
                            record_us(&mut h, took_us);
                        }
                    }
                    Ok(false) => note_error(
                        &counters,
                        "the server did not deliver (agent not connected)".into(),
                    ),
                    Err(e) => note_error(&counters, format!("{e:#}")),
                }
            });
            k += 1;
        }
    }
    let _all = slots.acquire_many(opts.max_in_flight.max(1) as u32).await?;
    Ok(Instant::now().saturating_duration_since(start))
}

fn note_error(counters: &Counters, error: String) {
    counters.rejected.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut first) = counters.first_error.lock() {
        first.get_or_insert(error);
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
        DeliverReport {
            target,
            via: opts.via,
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
            late_sends: out.late,
            server_cpu_s,
            client_cpu_s,
        }
    }

    pub fn table(&self) -> String {
        let mut rows = vec![
            (
                "load",
                format!(
                    "{} agents · {} events/s for {} s (via {})",
                    num(self.agents as f64),
                    num(self.rate),
                    num(self.duration_s),
                    self.via.name()
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
            ("send→202", self.accept_latency.line()),
            ("late sends", self.late_sends.to_string()),
            (
                "server CPU",
                self.server_cpu_s
                    .map(|s| format!("{} s", num(s)))
                    .unwrap_or_else(|| "– (no pid)".into()),
            ),
            ("client CPU", format!("{} s", num(self.client_cpu_s))),
        ];
        if let Some(e) = &self.first_error {
            rows.push(("first error", e.clone()));
        }
        table(&format!("deliver · {}", self.target.name()), &rows)
    }
}
