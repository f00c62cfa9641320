//! The worker's state file: which session files were uploaded (as which session ids),
//! which are failing or parked, and the figures `nexus worker status` prints. Written
//! whole to a temporary file, synced and renamed over the old one, so a crash leaves
//! either the old state or the new, never half of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the state file {path} is not a worker state ({source}); move it away to start over")]
    Corrupt {
        path: String,
        source: serde_json::Error,
    },
    #[error("cannot write the state file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub started_at: Option<DateTime<Utc>>,
    pub last_scan_at: Option<DateTime<Utc>>,
    pub last_upload_at: Option<DateTime<Utc>>,
    /// Set once the first scan's sessions were all tried (the backfill).
    #[serde(default)]
    pub backfill_done: bool,
    /// At the last scan: session files seen, finished but not uploaded, still written to.
    #[serde(default)]
    pub sessions_seen: u64,
    #[serde(default)]
    pub queued: u64,
    #[serde(default)]
    pub waiting: u64,
    /// Failed attempts in a row, over all sessions; an upload resets it.
    #[serde(default)]
    pub consecutive_failures: u64,
    pub last_error: Option<String>,
    /// By file path.
    #[serde(default)]
    pub uploaded: BTreeMap<String, Uploaded>,
    #[serde(default)]
    pub failing: BTreeMap<String, Failing>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Uploaded {
    pub session_id: Uuid,
    pub bytes: u64,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failing {
    pub session_id: Uuid,
    pub attempts: u32,
    pub next_at: DateTime<Utc>,
    pub last_error: String,
    /// Not tried again (see `nexus worker run --retry-parked`).
    pub parked: bool,
}

/// How retries are spaced and when a session is given up on.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Exponential from `base`, capped, with full jitter over its upper half so that
    /// sessions failing together do not come back together.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let ceiling = exp.min(self.cap);
        let half = ceiling / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

impl State {
    pub fn load(path: &Path) -> Result<State, StateError> {
        let shown = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: shown,
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(StateError::Read {
                path: shown,
                source,
            }),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let fail = |source| StateError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(fail)?;
        let body = serde_json::to_vec(self).map_err(|e| fail(std::io::Error::other(e)))?;
        file.write_all(&body).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)?;
        // The rename itself is durable once the directory is synced.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(fail)?;
        }
        Ok(())
    }

    pub fn record_upload(&mut self, path: &str, session_id: Uuid, bytes: u64) {
        let now = Utc::now();
        self.failing.remove(path);
        self.uploaded.insert(
            path.to_owned(),
            Uploaded {
                session_id,
                bytes,
                at: now,
            },
        );
        self.last_upload_at = Some(now);
        self.consecutive_failures = 0;
    }

    /// Counts a failed attempt; parks the session when `permanent` or out of attempts.
    /// Returns whether it is parked now.
    pub fn record_failure(
        &mut self,
        path: &str,
        session_id: Uuid,
        error: String,
        permanent: bool,
        policy: &RetryPolicy,
    ) -> bool {
        self.consecutive_failures += 1;
        self.last_error = Some(format!("{path}: {error}"));
        let entry = self.failing.entry(path.to_owned()).or_insert(Failing {
            session_id,
            attempts: 0,
            next_at: Utc::now(),
            last_error: String::new(),
            parked: false,
        });
        entry.attempts += 1;
        entry.last_error = error;
        entry.parked = permanent || entry.attempts >= policy.max_attempts;
        let wait = chrono::Duration::from_std(policy.backoff(entry.attempts)).unwrap_or_default();
        entry.next_at = Utc::now() + wait;
        entry.parked
    }

    /// A failure that is nobody's session's fault (the node cannot be reached): counted
    /// for alerting, but no session loses an attempt to it.
    pub fn record_unreachable(&mut self, error: String) {
        self.consecutive_failures += 1;
        self.last_error = Some(error);
    }

    pub fn parked(&self) -> impl Iterator<Item = (&String, &Failing)> {
        self.failing.iter().filter(|(_, f)| f.parked)
    }

    pub fn unpark_all(&mut self) {
        for f in self.failing.values_mut() {
            f.parked = false;
            f.attempts = 0;
            f.next_at = Utc::now();
        }
    }

    /// Whether `path` should be tried now.
    pub fn due(&self, path: &str, now: DateTime<Utc>) -> bool {
        !self.uploaded.contains_key(path)
            && self
                .failing
                .get(path)
                .is_none_or(|f| !f.parked && f.next_at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        base: Duration::from_secs(2),
        cap: Duration::from_secs(60),
        max_attempts: 3,
    };

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        for attempts in 1..=10 {
            let wait = POLICY.backoff(attempts);
            let ceiling = Duration::from_secs(2 << (attempts - 1)).min(POLICY.cap);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "{attempts}: {wait:?}"
            );
        }
    }

    #[test]
    fn a_session_is_parked_after_its_last_attempt_or_at_once_when_permanent() {
        let mut state = State::default();
        let id = Uuid::new_v4();
        assert!(!state.record_failure("a", id, "503".into(), false, &POLICY));
        assert!(!state.due("a", Utc::now()), "backing off");
        assert!(!state.record_failure("a", id, "503".into(), false, &POLICY));
        assert!(state.record_failure("a", id, "503".into(), false, &POLICY));
        assert!(!state.due("a", Utc::now() + chrono::Duration::days(1)));
        assert!(state.record_failure("b", id, "400".into(), true, &POLICY));
        assert_eq!(state.consecutive_failures, 4);
        state.record_upload("b", id, 1);
        assert_eq!(state.consecutive_failures, 0);
        assert_eq!(state.parked().count(), 1);
        state.unpark_all();
        assert!(state.due("a", Utc::now()));
    }

    #[test]
    fn saved_state_reads_back_and_a_torn_file_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sub/state.json");
        let mut state = State::default();
        state.record_upload("x.jsonl", Uuid::new_v4(), 42);
        state.save(&path).expect("save");
        let back = State::load(&path).expect("load");
        assert_eq!(back.uploaded["x.jsonl"].bytes, 42);
        std::fs::write(&path, b"{\"uploaded\":").expect("write");
        assert!(matches!(
            State::load(&path),
            Err(StateError::Corrupt { .. })
        ));
        assert!(
            State::load(&dir.path().join("none.json"))
                .expect("missing")
                .uploaded
                .is_empty()
        );
    }
}
