//! `nexus worker run`: scan, upload what is finished (a few at a time; the first run's
//! backlog — the backfill — at a bounded rate, with progress), record each outcome in
//! the state file, report health to the node, and scan again.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use futures_util::{StreamExt, stream};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use super::client::{Credentials, Node};
use super::health;
use super::scan::{self, SessionGlob};
use super::state::{RetryPolicy, State};
use super::upload::{self, Finished, UploadError};

pub struct RunSettings {
    pub url: String,
    pub credentials: Credentials,
    pub state_file: PathBuf,
    pub globs: Vec<SessionGlob>,
    pub quiet: Duration,
    pub scan_interval: Duration,
    pub concurrency: usize,
    /// Sessions per second while backfilling; 0: no bound.
    pub backfill_rate: f64,
    pub policy: RetryPolicy,
    pub alert_after: u32,
    pub heartbeat_interval: Duration,
    pub once: bool,
    pub retry_parked: bool,
}

/// Runs until `stop` (or after one pass with `once`); true when no upload failed.
pub async fn run(s: RunSettings, stop: CancellationToken) -> anyhow::Result<bool> {
    let node = Node::new(&s.url, s.credentials.clone(), Duration::from_secs(120))?;
    let host = health::host_name();
    let mut state = State::load(&s.state_file)?;
    if s.retry_parked {
        state.unpark_all();
    }
    state.started_at = Some(Utc::now());
    // Before any upload: a state file that cannot be written would mean re-uploads.
    state.save(&s.state_file)?;
    let started = Utc::now();
    let mut clean = true;
    let mut last_heartbeat: Option<Instant> = None;
    let mut unreadable = HashSet::new();
    loop {
        let before = state.consecutive_failures;
        let failed = pass(&s, &node, &host, &mut state, &mut unreadable, &stop).await?;
        clean &= failed == 0;
        state.save(&s.state_file)?;
        let alert = s.alert_after > 0
            && state.consecutive_failures >= u64::from(s.alert_after)
            && before < u64::from(s.alert_after);
        if alert {
            tracing::error!(
                failures = state.consecutive_failures,
                last_error = state.last_error.as_deref().unwrap_or(""),
                "uploads keep failing; reporting to the node"
            );
        }
        if s.once || alert || last_heartbeat.is_none_or(|t| t.elapsed() >= s.heartbeat_interval) {
            health::heartbeat(&node, &host, &s, started, &state).await;
            last_heartbeat = Some(Instant::now());
        }
        if s.once || stop.is_cancelled() {
            return Ok(clean);
        }
        tokio::select! {
            () = tokio::time::sleep(next_pass(&s, &state)) => {}
            () = stop.cancelled() => return Ok(clean),
        }
    }
}

/// Until the next scan, or sooner when a failing session's retry is due.
fn next_pass(s: &RunSettings, state: &State) -> Duration {
    let retry = state
        .failing
        .values()
        .filter(|f| !f.parked)
        .map(|f| (f.next_at - Utc::now()).to_std().unwrap_or_default())
        .min();
    let scan = s.scan_interval.min(s.heartbeat_interval);
    retry.map_or(scan, |r| r.min(scan))
}

enum Outcome {
    Uploaded,
    Skipped,
    Failed(UploadError),
}

/// One scan and the uploads it calls for; returns how many failed.
async fn pass(
    s: &RunSettings,
    node: &Node,
    host: &str,
    state: &mut State,
    unreadable: &mut HashSet<(String, String)>,
    stop: &CancellationToken,
) -> anyhow::Result<u64> {
    let (globs, quiet) = (s.globs.clone(), s.quiet);
    let found =
        tokio::task::spawn_blocking(move || scan::scan(&globs, quiet, SystemTime::now())).await?;
    // Each unreadable path is logged when it turns so, not at every scan.
    let now_unreadable: HashSet<_> = found.errors.iter().cloned().collect();
    for (path, error) in now_unreadable.difference(unreadable) {
        tracing::warn!(path, error, "cannot read a session path");
    }
    *unreadable = now_unreadable;
    let now = Utc::now();
    state.last_scan_at = Some(now);
    state.sessions_seen = found.finished.len() as u64 + found.active;
    state.waiting = found.active;
    let due: Vec<Finished> = found
        .finished
        .into_iter()
        .filter(|f| state.due(&f.key(), now))
        .collect();
    state.queued = due.len() as u64;
    let backfill = !state.backfill_done;
    let total = due.len();
    if backfill && total > 0 {
        tracing::info!(
            sessions = total,
            rate = s.backfill_rate,
            "backfill: uploading existing sessions"
        );
    }
    let pace = pacing(backfill, s.backfill_rate);
    // Once the node cannot be reached, the rest of the pass waits for the next one.
    let halted = Arc::new(AtomicBool::new(false));
    let mut outcomes = stream::iter(due)
        .map(|file| {
            let (pace, halted) = (pace.clone(), halted.clone());
            async move {
                if let Some(pace) = &pace {
                    pace.until_ready().await;
                }
                if halted.load(Ordering::Relaxed) || stop.is_cancelled() {
                    return (file, Outcome::Skipped);
                }
                let id = file.session_id(host);
                let outcome = match upload::upload(node, &file, id, host).await {
                    Ok(()) => Outcome::Uploaded,
                    Err(e) => {
                        if e.unreachable() {
                            halted.store(true, Ordering::Relaxed);
                        }
                        Outcome::Failed(e)
                    }
                };
                (file, outcome)
            }
        })
        .buffer_unordered(s.concurrency.max(1));
    let (mut done, mut failed, mut last_save) = (0usize, 0u64, Instant::now());
    while let Some((file, outcome)) = outcomes.next().await {
        failed += u64::from(record(s, state, host, &file, outcome));
        done += 1;
        state.queued = (total - done) as u64;
        if last_save.elapsed() >= Duration::from_secs(2) {
            state.save(&s.state_file)?;
            last_save = Instant::now();
            if backfill {
                tracing::info!(done, total, "backfill: progress");
            }
        }
    }
    if backfill && !halted.load(Ordering::Relaxed) && !stop.is_cancelled() {
        state.backfill_done = true;
        if total > 0 {
            tracing::info!(total, failed, "backfill: done");
        }
    }
    Ok(failed)
}

fn pacing(backfill: bool, rate: f64) -> Option<Arc<DefaultDirectRateLimiter>> {
    if !backfill || rate <= 0.0 {
        return None;
    }
    let quota =
        Quota::with_period(Duration::from_secs_f64(1.0 / rate))?.allow_burst(NonZeroU32::MIN);
    Some(Arc::new(RateLimiter::direct(quota)))
}

/// Records one outcome in the state; true when it was a failure.
fn record(
    s: &RunSettings,
    state: &mut State,
    host: &str,
    file: &Finished,
    outcome: Outcome,
) -> bool {
    let key = file.key();
    let id = file.session_id(host);
    match outcome {
        Outcome::Skipped => false,
        Outcome::Uploaded => {
            tracing::info!(path = key, session_id = %id, bytes = file.len, "session uploaded");
            state.record_upload(&key, id, file.len);
            false
        }
        Outcome::Failed(e) if e.unreachable() => {
            tracing::warn!(path = key, error = %e, "the node cannot be reached; retrying at the next scan");
            state.record_unreachable(e.to_string());
            true
        }
        Outcome::Failed(e) => {
            let error = e.to_string();
            if state.record_failure(&key, id, error.clone(), !e.transient(), &s.policy) {
                tracing::error!(path = key, session_id = %id, error, "session parked: not retried until `nexus worker run --retry-parked`");
            } else {
                tracing::warn!(path = key, session_id = %id, error, "upload failed; will retry");
            }
            true
        }
    }
}
