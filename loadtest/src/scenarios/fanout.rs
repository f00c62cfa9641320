//! `fanout`: one tenant-wide event; how long until the last agent has it.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::agents::unix_ns;
use crate::fleet::Fleet;
use crate::report::{Latency, histogram, num, record_us, table};
use crate::server::{Emitter, Fixture, Server};
use crate::target::Target;

/// The fan-out event's number: far from `deliver`'s 0…N.
pub const FANOUT_I: u64 = 1 << 50;

#[derive(Clone, Debug, Serialize)]
pub struct FanoutReport {
    pub target: Target,
    pub agents: usize,
    pub connected: usize,
    /// What the server said it addressed.
    pub addressed: u64,
    pub received: usize,
    pub missing: usize,
    /// Send → HTTP 202.
    pub emit_ms: f64,
    /// Send → each agent's read.
    pub latency: Latency,
    pub last_ms: f64,
}

pub async fn run(
    server: &Server,
    fixture: &Fixture,
    fleet: &mut Fleet,
    timeout: Duration,
) -> Result<FanoutReport> {
    let tenant = (fixture.tenant_id.as_str(), fixture.tokens.len());
    measure(&server.emitter(), server.target, tenant, fleet, timeout).await
}

/// One tenant-wide event through `emitter` for the `agents` of `tenant`
/// that `fleet` holds (on one server or spread over a cluster).
pub async fn measure(
    emitter: &Emitter,
    target: Target,
    (tenant, agents): (&str, usize),
    fleet: &mut Fleet,
    timeout: Duration,
) -> Result<FanoutReport> {
    while fleet.rx.try_recv().is_ok() {}
    let t_ns = unix_ns();
    let addressed = emitter
        .emit_tenant(tenant, json!({"t_ns": t_ns, "i": FANOUT_I}))
        .await?;
    let emit_ms = unix_ns().saturating_sub(t_ns) as f64 / 1e6;
    let expected = fleet.status.connected;
    let mut seen = vec![false; agents];
    let mut received = 0;
    let mut hist = histogram()?;
    let until = Instant::now() + timeout;
    while received < expected {
        let Ok(Some(d)) = tokio::time::timeout_at(until, fleet.rx.recv()).await else {
            break;
        };
        if d.i != FANOUT_I {
            continue;
        }
        if let Some(slot) = seen.get_mut(d.agent as usize)
            && !*slot
        {
            *slot = true;
            received += 1;
            record_us(&mut hist, d.recv_ns.saturating_sub(d.t_ns) / 1000);
        }
    }
    let latency = Latency::from_histogram(&hist);
    Ok(FanoutReport {
        target,
        agents,
        connected: expected,
        addressed,
        received,
        missing: expected - received,
        emit_ms,
        last_ms: latency.max_ms,
        latency,
    })
}

impl FanoutReport {
    pub fn table(&self) -> String {
        table(
            &format!("fanout · {}", self.target.name()),
            &[
                (
                    "connected / addressed",
                    format!("{} / {}", self.connected, self.addressed),
                ),
                (
                    "received / missing",
                    format!("{} / {}", self.received, self.missing),
                ),
                ("send→202", format!("{} ms", num(self.emit_ms))),
                ("send→agent", self.latency.line()),
                ("last agent", format!("{} ms", num(self.last_ms))),
            ],
        )
    }
}
