//! The queue's gauges by job kind, and the stale-queue warning. One task per node reads
//! them from the jobs table every [`REFRESH`] (two grouped queries), rather than each
//! scrape: several Prometheus servers, or a scrape storm, then cost nothing more.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::JobKind;
use crate::store::{JobStatus, QueueGauges, Store};
use crate::telemetry::catalog;
use crate::time::Clock;

/// How often the gauges are read: well under a scrape interval's worth of staleness.
const REFRESH: Duration = Duration::from_secs(5);
/// The stale-queue warning is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

pub(super) async fn run(
    store: Store,
    clock: Arc<dyn Clock>,
    stale_after: Duration,
    stop: CancellationToken,
) {
    // Kinds ever seen keep their series (set to 0 when their jobs are gone).
    let mut kinds: BTreeSet<String> = JobKind::ALL.iter().map(|k| k.as_str().into()).collect();
    for kind in JobKind::ALL.map(JobKind::as_str) {
        for name in [
            catalog::JOB_FAILURES,
            catalog::JOBS_DEAD,
            catalog::JOB_SECONDS,
        ] {
            catalog::zero_with(name, &[("kind", kind)]);
        }
    }
    let mut last_warning: Option<Instant> = None;
    loop {
        if let Ok(gauges) = store.queue_gauges(clock.now_ms()).await {
            publish(&mut kinds, &gauges);
            let stale = gauges
                .oldest_due_s
                .iter()
                .filter(|(_, age)| *age > stale_after.as_secs_f64())
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((kind, age)) = stale
                && last_warning.is_none_or(|t| t.elapsed() > WARN_EVERY)
            {
                tracing::warn!(
                    kind,
                    oldest_due_s = age,
                    queued = depth(&gauges, kind, JobStatus::Queued),
                    "job queue is stale: a due job has waited longer than --queue-stale-after"
                );
                last_warning = Some(Instant::now());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Sets every (kind, status) pair, absent ones to 0, so a drained queue reads 0.
fn publish(kinds: &mut BTreeSet<String>, gauges: &QueueGauges) {
    kinds.extend(gauges.depth.iter().map(|(kind, _, _)| kind.clone()));
    for kind in kinds.iter() {
        for status in JobStatus::ALL {
            metrics::gauge!(catalog::QUEUE_DEPTH, "kind" => kind.clone(), "status" => status.as_str())
                .set(depth(gauges, kind, status) as f64);
        }
        let age = gauges
            .oldest_due_s
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0.0, |(_, age)| *age);
        metrics::gauge!(catalog::QUEUE_OLDEST_AGE, "kind" => kind.clone()).set(age);
    }
}

fn depth(gauges: &QueueGauges, kind: &str, status: JobStatus) -> i64 {
    gauges
        .depth
        .iter()
        .find(|(k, s, _)| k == kind && *s == status)
        .map_or(0, |(_, _, n)| *n)
}
