//! What the worker tells the node about itself (`POST /api/workers/heartbeat`): the
//! node lists it for operators, marks it stale when it stops, and alerts through the
//! tenant's alerts when `consecutive_failures` reaches `alert_after`.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::client::Node;
use super::runner::RunSettings;
use super::state::State;

/// This machine's name (the kernel's), as the heartbeat and derived session ids use it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Sends one heartbeat; a failure is logged, never fatal (the uploads matter more).
pub async fn heartbeat(
    node: &Node,
    host: &str,
    s: &RunSettings,
    started: DateTime<Utc>,
    state: &State,
) {
    let body = json!({
        "host": host,
        "version": env!("CARGO_PKG_VERSION"),
        "interval_s": s.heartbeat_interval.as_secs().clamp(1, 3600),
        "started_at": started.to_rfc3339(),
        "last_scan_at": state.last_scan_at.map(|t| t.to_rfc3339()),
        "last_upload_at": state.last_upload_at.map(|t| t.to_rfc3339()),
        "sessions_seen": state.sessions_seen,
        "uploaded": state.uploaded.len(),
        "queued": state.queued,
        "failing": state.failing.values().filter(|f| !f.parked).count(),
        "parked": state.parked().count(),
        "consecutive_failures": state.consecutive_failures,
        "alert_after": s.alert_after,
        "last_error": state.last_error.as_deref().map(|e| e.chars().take(1000).collect::<String>()),
    });
    match node
        .call(Method::POST, "/api/workers/heartbeat", |r| r.json(&body))
        .await
    {
        Ok(_) => tracing::debug!("heartbeat sent"),
        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
            tracing::debug!("the node takes no worker heartbeats (older version)")
        }
        Err(e) => tracing::warn!(error = %e, "heartbeat not sent"),
    }
}
