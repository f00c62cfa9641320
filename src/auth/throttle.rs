//! Throttles repeated failed client authentications, per client id.
//!
//! Hand-rolled rather than a rate-limit crate: only *failures* count, and a caller
//! must learn "blocked, retry in N s" without spending a unit of quota, which keyed
//! GCRA limiters (governor) don't offer.

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Bounds memory when an attacker sprays random client ids.
const MAX_TRACKED: usize = 100_000;

pub struct Throttle {
    max_failures: u32,
    window: Duration,
    entries: DashMap<String, Entry>,
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
}

impl Throttle {
    pub fn new(max_failures: u32, window: Duration) -> Throttle {
        Throttle {
            max_failures,
            window,
            entries: DashMap::new(),
        }
    }

    /// `Some(wait)` when `client` has failed too often and must wait before trying again.
    pub fn blocked(&self, client: &str, now: Instant) -> Option<Duration> {
        let e = *self.entries.get(client)?;
        let until = e.window_start + self.window;
        (e.failures >= self.max_failures && now < until).then(|| until - now)
    }

    pub fn record_failure(&self, client: &str, now: Instant) {
        if self.entries.len() >= MAX_TRACKED {
            self.entries
                .retain(|_, e| now < e.window_start + self.window);
        }
        let mut e = self.entries.entry(client.to_owned()).or_insert(Entry {
            failures: 0,
            window_start: now,
        });
        if now >= e.window_start + self.window {
            *e = Entry {
                failures: 0,
                window_start: now,
            };
        }
        e.failures += 1;
    }

    pub fn record_success(&self, client: &str) {
        self.entries.remove(client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_window_ends() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..2 {
            t.record_failure("c", t0);
        }
        assert_eq!(t.blocked("c", t0), None);
        t.record_failure("c", t0);
        let wait = t
            .blocked("c", t0 + Duration::from_secs(10))
            .expect("blocked");
        assert_eq!(wait, Duration::from_secs(50));
        assert_eq!(t.blocked("c", t0 + Duration::from_secs(60)), None);
        assert_eq!(t.blocked("other", t0), None);
    }

    #[test]
    fn success_clears_the_count() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        t.record_failure("c", now);
        t.record_success("c");
        t.record_failure("c", now);
        assert_eq!(t.blocked("c", now), None);
    }
}
