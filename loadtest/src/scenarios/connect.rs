//! `connect`: open N agent sockets, wait for every `welcome`; connects/s and
//! the server's resident memory per idle connection.

use anyhow::Result;
use serde::Serialize;

use super::ClientOpts;
use crate::fleet::Fleet;
use crate::report::{kib, mib, num, table};
use crate::server::{Fixture, Server};
use crate::target::Target;

#[derive(Clone, Debug, Serialize)]
pub struct ConnectReport {
    pub target: Target,
    pub agents: usize,
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub client_processes: usize,
    pub concurrency: usize,
    pub provision_s: f64,
    pub connect_s: f64,
    pub connects_per_s: f64,
    pub settle_s: f64,
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub rss_per_conn_bytes: Option<f64>,
    /// Sockets opened (and settled) before the marginal reading.
    pub warmup: usize,
    /// (RSS after − RSS after the warm-up) ÷ sockets opened after it.
    pub rss_per_conn_marginal_bytes: Option<f64>,
    /// Server CPU (user + system) from just before the first connect to the
    /// reading after settling.
    pub server_cpu_s: Option<f64>,
    /// CPU of this client process over the same span (workers not included).
    pub client_cpu_s: f64,
}

pub async fn run(
    server: &Server,
    fixture: &Fixture,
    opts: &ClientOpts,
) -> Result<(ConnectReport, Fleet)> {
    let before = server.sample().await?;
    let client_before = crate::proc::sample(std::process::id())?;
    let mut fleet = Fleet::new();
    let (target, ws) = (server.target, server.ws.as_str());
    // A small first batch warms the server's one-time costs (pools, caches,
    // allocator arenas); RSS is read again after it for the marginal cost.
    let warm = warmup_size(fixture.tokens.len());
    let (tokens_warm, tokens_rest) = fixture.tokens.split_at(warm);
    fleet
        .grow(target, ws, tokens_warm, opts.concurrency, opts.per_process)
        .await?;
    tokio::time::sleep(opts.settle).await;
    let warmed = server.sample().await?;
    let (rest, _) = fleet
        .grow(target, ws, tokens_rest, opts.concurrency, opts.per_process)
        .await?;
    let connect_s = fleet.elapsed.as_secs_f64();
    tokio::time::sleep(opts.settle).await;
    let after = server.sample().await?;
    let client_after = crate::proc::sample(std::process::id())?;
    let connected = fleet.status.connected;
    let report = ConnectReport {
        target: server.target,
        agents: fixture.tokens.len(),
        connected,
        failed: fleet.status.failed,
        first_error: fleet.status.first_error.clone(),
        client_processes: fleet.processes,
        concurrency: opts.concurrency,
        provision_s: fixture.provision_s,
        connect_s,
        connects_per_s: connected as f64 / connect_s.max(1e-9),
        settle_s: opts.settle.as_secs_f64(),
        rss_before_bytes: before.map(|s| s.rss_bytes),
        rss_after_bytes: after.map(|s| s.rss_bytes),
        rss_per_conn_bytes: before.zip(after).and_then(|(b, a)| {
            (connected > 0).then(|| (a.rss_bytes as f64 - b.rss_bytes as f64) / connected as f64)
        }),
        warmup: warm,
        rss_per_conn_marginal_bytes: warmed.zip(after).and_then(|(w, a)| {
            (rest.connected > 0)
                .then(|| (a.rss_bytes as f64 - w.rss_bytes as f64) / rest.connected as f64)
        }),
        server_cpu_s: before.zip(after).map(|(b, a)| a.cpu_s - b.cpu_s),
        client_cpu_s: client_after.cpu_s - client_before.cpu_s,
    };
    Ok((report, fleet))
}

/// 5 % of the sockets, 50 to 500 (none for tiny runs).
pub fn warmup_size(agents: usize) -> usize {
    if agents < 100 {
        return 0;
    }
    (agents / 20).clamp(50, 500)
}

impl ConnectReport {
    pub fn table(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "– (no pid)".into());
        let mut rows = vec![
            ("agents", num(self.agents as f64)),
            (
                "connected / failed",
                format!("{} / {}", self.connected, self.failed),
            ),
            ("client processes", self.client_processes.to_string()),
            ("provisioning", format!("{} s", num(self.provision_s))),
            ("connect time", format!("{} s", num(self.connect_s))),
            ("connects/s", num(self.connects_per_s)),
            (
                "server RSS before",
                opt(self.rss_before_bytes.map(|b| mib(b as f64))),
            ),
            (
                "server RSS after",
                opt(self.rss_after_bytes.map(|b| mib(b as f64))),
            ),
            (
                "RSS per idle connection",
                opt(self.rss_per_conn_bytes.map(kib)),
            ),
            (
                "  marginal (after warm-up)",
                opt(self
                    .rss_per_conn_marginal_bytes
                    .map(|b| format!("{} (first {} sockets excluded)", kib(b), self.warmup))),
            ),
            (
                "server CPU",
                opt(self.server_cpu_s.map(|s| format!("{} s", num(s)))),
            ),
            ("client CPU", format!("{} s", num(self.client_cpu_s))),
        ];
        if let Some(e) = &self.first_error {
            rows.push(("first error", e.clone()));
        }
        table(&format!("connect · {}", self.target.name()), &rows)
    }
}
