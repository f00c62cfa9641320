//! The sending side of `deliver`: event `k` is due at `start + k/rate`
//! (open loop), sent alone (`--via api|slack|clickup`) or in batches
//! (`--via batch`, see [`Batching`]). Each request runs on its own task, so
//! a slow answer never delays the schedule.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::{DeliverOpts, Pick, Via};
use crate::agents::unix_ns;
use crate::report::{histogram, record_us};
use crate::server::Emitter;

/// `--via batch`: when the pending events go out as one `POST /api/events`.
///
/// A batch opens at its first event's scheduled time `t0`. It is sent when it
/// holds `size` events (at the scheduled time of the last one), or at
/// `t0 + max_wait` with every event scheduled by then, whichever comes first;
/// the run's last batch goes as soon as its last event is due. Each event
/// keeps its own scheduled time as its stamp, so the wait in a batch counts
/// in its latency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Batching {
    pub size: usize,
    pub max_wait: Duration,
}

impl Batching {
    /// The batch starting at event `first` of `total` events spaced
    /// `period_ns` apart: `(end, send_at_ns)`, events `first..end` sent at
    /// `send_at_ns` after the start.
    pub fn next(&self, first: u64, total: u64, period_ns: f64) -> (u64, u64) {
        let at = |k: u64| (k as f64 * period_ns) as u64;
        let deadline = at(first) + self.max_wait.as_nanos() as u64;
        // The last event scheduled by the deadline (float-safe both ways).
        let mut last = ((deadline as f64 / period_ns).floor() as u64).max(first);
        while at(last + 1) <= deadline {
            last += 1;
        }
        while last > first && at(last) > deadline {
            last -= 1;
        }
        let by_time = (last + 1).min(total);
        let by_size = (first + self.size.max(1) as u64).min(total);
        if by_size <= by_time {
            (by_size, at(by_size - 1))
        } else if by_time == total {
            (total, at(total - 1))
        } else {
            (by_time, deadline)
        }
    }
}

pub struct Counters {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub late: AtomicU64,
    pub requests: AtomicU64,
    pub first_error: Mutex<Option<String>>,
    /// Intended send → the server's acceptance.
    pub accept_hist: Mutex<Histogram<u64>>,
}

impl Counters {
    pub fn new() -> Result<Counters> {
        Ok(Counters {
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            late: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            first_error: Mutex::new(None),
            accept_hist: Mutex::new(histogram()?),
        })
    }

    fn accept(&self, t_ns: u64) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let took_us = unix_ns().saturating_sub(t_ns) / 1000;
        if let Ok(mut h) = self.accept_hist.lock() {
            record_us(&mut h, took_us);
        }
    }

    fn refuse(&self, error: String) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }
}

/// What the sender needs for a run.
pub struct Plan {
    pub emitters: Arc<Vec<Emitter>>,
    pub agents: Arc<Vec<String>>,
    pub pick: Pick,
    pub total: u64,
    pub start: Instant,
    pub start_unix: u64,
    pub counters: Arc<Counters>,
}

impl Plan {
    fn intended(&self, k: u64, period_ns: f64) -> u64 {
        (k as f64 * period_ns) as u64
    }
}

/// Sends the run's events; returns the time from `start` to the last answer.
pub async fn schedule(plan: Plan, opts: DeliverOpts) -> Result<Duration> {
    let slots = Arc::new(Semaphore::new(opts.max_in_flight.max(1)));
    let period_ns = 1e9 / opts.rate;
    match opts.via {
        Via::Batch => batched(&plan, &slots, period_ns, opts.batching).await?,
        _ => singles(&plan, &slots, period_ns).await?,
    }
    let _all = slots.acquire_many(opts.max_in_flight.max(1) as u32).await?;
    Ok(Instant::now().saturating_duration_since(plan.start))
}

/// A free in-flight slot; a send that has to wait for one counts as late.
async fn slot(slots: &Arc<Semaphore>, counters: &Counters) -> Result<OwnedSemaphorePermit> {
    match slots.clone().try_acquire_owned() {
        Ok(p) => Ok(p),
        Err(_) => {
            counters.late.fetch_add(1, Ordering::Relaxed);
            Ok(slots.clone().acquire_owned().await?)
        }
    }
}

/// One request per event, issued at its scheduled time (or at once, if the
/// schedule is behind).
async fn singles(plan: &Plan, slots: &Arc<Semaphore>, period_ns: f64) -> Result<()> {
    let mut k = 0u64;
    while k < plan.total {
        let next = plan.start + Duration::from_nanos(plan.intended(k, period_ns));
        tokio::time::sleep_until(next).await;
        let elapsed = Instant::now()
            .saturating_duration_since(plan.start)
            .as_nanos() as f64;
        let due = ((elapsed / period_ns).floor() as u64 + 1).min(plan.total);
        while k < due {
            let permit = slot(slots, &plan.counters).await?;
            let t_ns = plan.start_unix + plan.intended(k, period_ns);
            let (sender, agent) = (plan.pick)(k);
            let emitter = plan.emitters[sender].clone();
            let agent = plan.agents[agent].clone();
            let counters = plan.counters.clone();
            counters.requests.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _permit = permit;
                match emitter.emit_agent(&agent, stamp(k, t_ns)).await {
                    Ok(true) => counters.accept(t_ns),
                    Ok(false) => {
                        counters.refuse("the server did not deliver (agent not connected)".into())
                    }
                    Err(e) => counters.refuse(format!("{e:#}")),
                }
            });
            k += 1;
        }
    }
    Ok(())
}

/// Events as [`Batching`] cuts them, one request per emitter a batch uses.
async fn batched(
    plan: &Plan,
    slots: &Arc<Semaphore>,
    period_ns: f64,
    batching: Batching,
) -> Result<()> {
    let mut k = 0u64;
    while k < plan.total {
        let (end, send_at) = batching.next(k, plan.total, period_ns);
        tokio::time::sleep_until(plan.start + Duration::from_nanos(send_at)).await;
        let mut by_emitter: BTreeMap<usize, Vec<(u64, String, Value)>> = BTreeMap::new();
        for i in k..end {
            let (sender, agent) = (plan.pick)(i);
            let t_ns = plan.start_unix + plan.intended(i, period_ns);
            by_emitter.entry(sender).or_default().push((
                t_ns,
                plan.agents[agent].clone(),
                stamp(i, t_ns),
            ));
        }
        for (sender, events) in by_emitter {
            let permit = slot(slots, &plan.counters).await?;
            let emitter = plan.emitters[sender].clone();
            let counters = plan.counters.clone();
            counters.requests.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _permit = permit;
                let (stamps, events): (Vec<u64>, Vec<(String, Value)>) =
                    events.into_iter().map(|(t, a, d)| (t, (a, d))).unzip();
                match emitter.emit_batch(&events).await {
                    Ok(outcomes) => {
                        for (t_ns, outcome) in stamps.into_iter().zip(outcomes) {
                            match outcome {
                                Ok(()) => counters.accept(t_ns),
                                Err(e) => counters.refuse(e),
                            }
                        }
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        stamps.iter().for_each(|_| counters.refuse(e.clone()));
                    }
                }
            });
        }
        k = end;
    }
    Ok(())
}

/// The data of load-test event `i`, due at `t_ns` (Unix ns).
fn stamp(i: u64, t_ns: u64) -> Value {
    json!({"t_ns": t_ns, "i": i})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(size: usize, wait_ms: u64) -> Batching {
        Batching {
            size,
            max_wait: Duration::from_millis(wait_ms),
        }
    }

    #[test]
    fn a_fast_schedule_fills_batches_by_size() {
        // 20,000/s: 100 events take 4.95 ms, under the 5 ms wait.
        let period = 1e9 / 20_000.0;
        assert_eq!(rule(100, 5).next(0, 1000, period), (100, 4_950_000));
        assert_eq!(rule(100, 5).next(100, 1000, period), (200, 9_950_000));
    }

    #[test]
    fn a_slow_schedule_sends_what_the_wait_collected() {
        // 5,000/s: events 0..=25 are due by 5 ms (event 25 exactly at it).
        let period = 1e9 / 5_000.0;
        assert_eq!(rule(100, 5).next(0, 1000, period), (26, 5_000_000));
        assert_eq!(rule(100, 5).next(26, 1000, period), (52, 10_200_000));
        // Slower than one event per wait: every event alone, at the wait's end.
        assert_eq!(rule(100, 5).next(3, 10, 1e7), (4, 35_000_000));
    }

    #[test]
    fn the_last_batch_goes_when_its_last_event_is_due() {
        let period = 1e9 / 5_000.0;
        assert_eq!(rule(100, 5).next(990, 1000, period), (1000, 199_800_000));
        assert_eq!(rule(100, 5).next(0, 1, period), (1, 0));
    }

    #[test]
    fn every_event_is_in_exactly_one_batch() {
        for (rate, size, wait) in [(20_000.0, 100, 5), (5_000.0, 100, 5), (333.0, 7, 2)] {
            let (period, mut k, mut batches) = (1e9 / rate, 0, 0);
            let mut last_send = 0;
            while k < 5_000 {
                let (end, at) = rule(size, wait).next(k, 5_000, period);
                assert!(end > k && end - k <= size as u64);
                assert!(at >= last_send, "sends in schedule order");
                assert!(
                    at >= (((end - 1) as f64) * period) as u64,
                    "never before due"
                );
                (k, last_send, batches) = (end, at, batches + 1);
            }
            assert!(batches >= 5_000 / size);
        }
    }
}
