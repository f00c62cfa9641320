//! The measurements, each returning a serialisable report with a human table.
//! `connect`, `deliver`, `fanout` and `sessions` take a started [`crate::server::Server`]
//! (and its agents); `compare` starts one per round, `cluster` its own nodes.

pub mod cluster;
pub mod compare;
pub mod connect;
pub mod deliver;
pub mod fanout;
pub mod sessions;
pub mod usage_query;

use std::time::Duration;

/// Client-side knobs shared by every scenario.
#[derive(Clone, Debug)]
pub struct ClientOpts {
    /// Sockets being opened at once.
    pub concurrency: usize,
    /// Sockets per client process; more go to `worker` subprocesses.
    pub per_process: usize,
    /// Wait after the last `welcome` before reading the server's RSS.
    pub settle: Duration,
}
