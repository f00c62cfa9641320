//! The job queue: retries with backoff on an injected clock, dead letters that keep
//! every error, replay, the lease sweeper, cursor pagination, operator endpoints.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use nexus::app::Extras;
use nexus::queue::{Done, JobError, JobOutcome, Processor};
use nexus::store::{Job, JobStatus, NewJob};
use nexus::time::{Clock, ManualClock};
use nexus_proto::TenantId;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp, TestDb};

both_profiles!(
    transient_failures_retry_with_backoff_then_succeed,
    dead_letters_keep_every_error_and_replay_processes_them,
    permanent_errors_go_straight_to_dead,
    sweeper_recovers_a_job_whose_worker_died,
    an_attempt_that_lost_its_lease_is_stopped,
    cursor_pagination_is_stable_under_inserts,
    unknown_kinds_complete_as_no_processor_in_stats,
    jobs_api_respects_tenants_and_scopes,
);

/// Fails transiently until `heal` is set, then succeeds.
struct Flaky {
    calls: AtomicU32,
    fail_first: u32,
    heal: AtomicBool,
}

impl Processor for Flaky {
    fn process(&self, _job: Job) -> BoxFuture<'static, Result<Done, JobError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let ok = n > self.fail_first || self.heal.load(Ordering::SeqCst);
        async move {
            if ok {
                Ok(Done::default())
            } else {
                Err(JobError::transient(format!(
                    "provider answered 503 (call {n})"
                )))
            }
        }
        .boxed()
    }
}

/// Hangs on its first call (until dropped), succeeds on the next.
#[derive(Default)]
struct HangsOnce {
    calls: AtomicU32,
    started: tokio::sync::Notify,
    dropped: Arc<tokio::sync::Notify>,
}

/// Tells `HangsOnce` its first call's future was dropped (aborted).
struct OnDrop(Arc<tokio::sync::Notify>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

impl Processor for HangsOnce {
    fn process(&self, _job: Job) -> BoxFuture<'static, Result<Done, JobError>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) > 0 {
            return async { Ok(Done::default()) }.boxed();
        }
        self.started.notify_one();
        let guard = OnDrop(self.dropped.clone());
        async move {
            let _guard = guard;
            std::future::pending().await
        }
        .boxed()
    }
}

struct Refuses;

impl Processor for Refuses {
    fn process(&self, _job: Job) -> BoxFuture<'static, Result<Done, JobError>> {
        async {
            Err(JobError::permanent(
                "provider_rejected",
                "provider answered 400",
            ))
        }
        .boxed()
    }
}

struct Setup {
    app: TestApp,
    clock: ManualClock,
    tenant: TenantId,
    flaky: Arc<Flaky>,
    hangs: Arc<HangsOnce>,
}

async fn setup(p: Profile, fail_first: u32) -> Setup {
    let db = TestDb::new(p).await;
    let clock = ManualClock::starting_now();
    let hangs = Arc::new(HangsOnce::default());
    let flaky = Arc::new(Flaky {
        calls: AtomicU32::new(0),
        fail_first,
        heal: AtomicBool::new(false),
    });
    let other_jobs = HashMap::from([
        ("test.flaky".to_owned(), flaky.clone() as Arc<dyn Processor>),
        ("test.refuses".to_owned(), Arc::new(Refuses)),
        ("test.hangs".to_owned(), hangs.clone()),
    ]);
    let extras = Extras {
        clock: Arc::new(clock.clone()),
        other_jobs,
    };
    let app = TestApp::spawn_full(
        db,
        |c| {
            c.serve.queue.workers = 2;
            c.serve.queue.lease = Duration::from_millis(900);
        },
        extras,
    )
    .await;
    let tenant = app.tenant("acme").await.id;
    Setup {
        app,
        clock,
        tenant,
        flaky,
        hangs,
    }
}

fn job(tenant: TenantId, kind: &str, key: &str) -> NewJob {
    NewJob {
        tenant_id: tenant,
        source_id: None,
        source: "test".into(),
        kind: kind.into(),
        dedupe_key: key.into(),
        payload: "{}".into(),
        trace_id: None,
        max_attempts: 3,
        run_at: 0,
    }
}

async fn enqueue(s: &Setup, kind: &str, key: &str) -> Uuid {
    match s
        .app
        .state
        .queue
        .enqueue(job(s.tenant, kind, key))
        .await
        .expect("enqueue")
    {
        nexus::store::Enqueued::Created(id) => id,
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn next_outcome(rx: &mut broadcast::Receiver<JobOutcome>, id: Uuid) -> JobOutcome {
    loop {
        let o = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("an outcome in time")
            .expect("outcomes");
        if o.job_id == id {
            return o;
        }
    }
}

async fn transient_failures_retry_with_backoff_then_succeed(p: Profile) {
    let s = setup(p, 2).await;
    let mut outcomes = s.app.state.queue.subscribe();
    let id = enqueue(&s, "test.flaky", "k1").await;
    let first = next_outcome(&mut outcomes, id).await;
    assert_eq!(
        first.status,
        JobStatus::Queued,
        "a transient failure is retried"
    );
    let (job, _) = s.app.state.store.get_job(id).await.expect("job");
    let delay = job.run_at - s.clock.now_ms();
    assert!(
        (500..=1000).contains(&delay),
        "first retry after base/2..base (1 s), was {delay} ms"
    );

    // Time passes (by hand) and workers look again.
    s.clock.advance_ms(1_000);
    s.app.state.queue.wake_claimer();
    let second = next_outcome(&mut outcomes, id).await;
    assert_eq!(second.status, JobStatus::Queued);
    let (job, _) = s.app.state.store.get_job(id).await.expect("job");
    let delay = job.run_at - s.clock.now_ms();
    assert!(
        (1_000..=2_000).contains(&delay),
        "the backoff doubles, was {delay} ms"
    );
    s.clock.advance_ms(2_000);
    s.app.state.queue.wake_claimer();
    assert_eq!(
        next_outcome(&mut outcomes, id).await.status,
        JobStatus::Done
    );

    let (job, attempts) = s.app.state.store.get_job(id).await.expect("job");
    assert_eq!((job.status, job.attempts), (JobStatus::Done, 3));
    assert_eq!(attempts.len(), 2, "both failures are on record");
    assert!(attempts[0].error.contains("call 1") && attempts[1].error.contains("call 2"));
}

async fn dead_letters_keep_every_error_and_replay_processes_them(p: Profile) {
    let s = setup(p, u32::MAX).await;
    let mut outcomes = s.app.state.queue.subscribe();
    let id = enqueue(&s, "test.flaky", "k2").await;
    for _ in 0..2 {
        assert_eq!(
            next_outcome(&mut outcomes, id).await.status,
            JobStatus::Queued
        );
        s.clock.advance_ms(10 * 60_000);
        s.app.state.queue.wake_claimer();
    }
    let dead = next_outcome(&mut outcomes, id).await;
    assert_eq!(
        (dead.status, dead.reason.as_deref()),
        (JobStatus::Dead, Some("retries_exhausted"))
    );

    let key = s.app.operator_key("read,write", None).await;
    let detail = s.app.get_json(&format!("/api/jobs/{id}"), &key).await;
    assert_eq!(detail["status"], "dead");
    assert_eq!(
        detail["attempts_log"].as_array().map(Vec::len),
        Some(3),
        "every attempt's error is kept: {detail}"
    );
    assert_eq!(detail["payload"], serde_json::json!({}));

    // The provider is fixed; the operator replays the dead letter.
    s.flaky.heal.store(true, Ordering::SeqCst);
    let resp = s
        .app
        .http
        .post(s.app.url(&format!("/api/jobs/{id}/replay")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        next_outcome(&mut outcomes, id).await.status,
        JobStatus::Done
    );
    let again = s
        .app
        .http
        .post(s.app.url(&format!("/api/jobs/{id}/replay")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a done job may be replayed too"
    );
    assert_eq!(
        next_outcome(&mut outcomes, id).await.status,
        JobStatus::Done
    );
}

async fn permanent_errors_go_straight_to_dead(p: Profile) {
    let s = setup(p, 0).await;
    let mut outcomes = s.app.state.queue.subscribe();
    let id = enqueue(&s, "test.refuses", "k3").await;
    let o = next_outcome(&mut outcomes, id).await;
    assert_eq!(
        (o.status, o.reason.as_deref()),
        (JobStatus::Dead, Some("provider_rejected"))
    );
    let (job, attempts) = s.app.state.store.get_job(id).await.expect("job");
    assert_eq!((job.attempts, attempts.len()), (1, 1));
    assert_eq!(job.reason_code.as_deref(), Some("provider_rejected"));
}

async fn sweeper_recovers_a_job_whose_worker_died(p: Profile) {
    let s = setup(p, 0).await;
    let store = &s.app.state.store;
    let mut outcomes = s.app.state.queue.subscribe();
    // Due in an hour, so the live workers leave it alone; a "worker" claims it then, on
    // its only attempt, and dies holding a 30 s lease.
    let mut j = job(s.tenant, "test.flaky", "k4");
    j.run_at = s.clock.now_ms() + 3_600_000;
    j.max_attempts = 1;
    let nexus::store::Enqueued::Created(id) = store.enqueue(j).await.expect("enqueue") else {
        panic!("new job")
    };
    let later = s.clock.now_ms() + 3_600_000;
    let claimed = store
        .claim_jobs("ghost/0", later, 30_000, 1)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        s.app.state.queue.sweep_once().await,
        0,
        "a live lease is left alone"
    );

    // The lease runs out (by the database's clock, which the test cannot move).
    assert!(store.renew_lease(id, "ghost/0", -1).await.expect("expire"));
    assert_eq!(s.app.state.queue.sweep_once().await, 1);
    let o = next_outcome(&mut outcomes, id).await;
    assert_eq!(
        o.status,
        JobStatus::Done,
        "a worker's death on the last attempt does not dead-letter the job: {o:?}"
    );
    let (job, attempts) = store.get_job(id).await.expect("job");
    assert_eq!(job.attempts, 2, "the dead worker's attempt counts");
    assert!(attempts[0].error.contains("lease expired"));
}

async fn an_attempt_that_lost_its_lease_is_stopped(p: Profile) {
    let s = setup(p, 0).await;
    let store = &s.app.state.store;
    let mut outcomes = s.app.state.queue.subscribe();
    let id = enqueue(&s, "test.hangs", "k5").await;
    s.hangs.started.notified().await;
    // Another node's sweeper takes the job back, as if this node had gone quiet.
    let (job, _) = store.get_job(id).await.expect("job");
    let owner = job.lease_owner.expect("a running job has a lease owner");
    assert!(store.renew_lease(id, &owner, -1).await.expect("expire"));
    assert_eq!(s.app.state.queue.sweep_once().await, 1);

    tokio::time::timeout(Duration::from_secs(15), s.hangs.dropped.notified())
        .await
        .expect("the attempt that lost its lease is aborted, not left running");
    // The next attempt (which may end first) finishes the job; the aborted one's
    // result is not recorded over it.
    let both = [
        next_outcome(&mut outcomes, id).await,
        next_outcome(&mut outcomes, id).await,
    ];
    assert!(both.iter().any(|o| o.status == JobStatus::Done), "{both:?}");
    assert!(
        both.iter()
            .any(|o| o.error.as_deref().is_some_and(|e| e.contains("lease lost"))),
        "{both:?}"
    );
    let (job, _) = store.get_job(id).await.expect("job");
    assert_eq!((job.status, job.attempts), (JobStatus::Done, 2));
}

async fn cursor_pagination_is_stable_under_inserts(p: Profile) {
    let s = setup(p, 0).await;
    let store = &s.app.state.store;
    let filter = nexus::store::JobFilter {
        kind: Some("test.page".into()),
        ..Default::default()
    };
    let mut first_ten = Vec::new();
    for i in 0..10 {
        let mut j = job(s.tenant, "test.page", &format!("p{i}"));
        j.run_at = i64::MAX / 2;
        let nexus::store::Enqueued::Created(id) = store.enqueue(j).await.expect("enqueue") else {
            panic!()
        };
        first_ten.push(id);
    }
    let page1 = nexus::queue::ops::list(store, &filter, None, 4)
        .await
        .expect("page");
    for i in 0..5 {
        let mut j = job(s.tenant, "test.page", &format!("late{i}"));
        j.run_at = i64::MAX / 2;
        store.enqueue(j).await.expect("enqueue");
    }
    let page2 = nexus::queue::ops::list(store, &filter, page1.next_cursor, 4)
        .await
        .expect("page");
    let page3 = nexus::queue::ops::list(store, &filter, page2.next_cursor, 4)
        .await
        .expect("page");
    let seen: Vec<Uuid> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|p| p.jobs.iter().map(|j| j.id))
        .collect();
    first_ten.reverse();
    assert_eq!(
        seen, first_ten,
        "newest first, each exactly once, inserts don't shift pages"
    );
    assert!(page3.next_cursor.is_none());
}

async fn unknown_kinds_complete_as_no_processor_in_stats(p: Profile) {
    let s = setup(p, 0).await;
    let mut outcomes = s.app.state.queue.subscribe();
    let id = enqueue(&s, "test.nobody", "k5").await;
    let o = next_outcome(&mut outcomes, id).await;
    assert_eq!(
        (o.status, o.reason.as_deref()),
        (JobStatus::Done, Some("no_processor"))
    );
    let stats = s.app.queue_stats().await;
    assert_eq!(stats["counts"]["done"], 1);
    assert_eq!(stats["counts"]["queued"], 0);
    assert_eq!(stats["reasons"]["no_processor"], 1);
    assert_eq!(stats["oldest_queued_age_s"], 0.0);
}

async fn jobs_api_respects_tenants_and_scopes(p: Profile) {
    let s = setup(p, 0).await;
    let other = s.app.tenant("other").await.id;
    let mut theirs = job(other, "test.page", "theirs");
    theirs.run_at = i64::MAX / 2;
    let nexus::store::Enqueued::Created(their_id) =
        s.app.state.store.enqueue(theirs).await.expect("enqueue")
    else {
        panic!()
    };
    let bound = s.app.operator_key("read,write", Some(s.tenant)).await;
    let listed: Value = s
        .app
        .http
        .get(s.app.url("/api/jobs"))
        .bearer_auth(&bound)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed["jobs"],
        serde_json::json!([]),
        "another tenant's jobs are invisible"
    );
    for (method, path) in [
        ("GET", format!("/api/jobs/{their_id}")),
        ("POST", format!("/api/jobs/{their_id}/replay")),
        ("DELETE", format!("/api/jobs/{their_id}")),
    ] {
        let req = match method {
            "GET" => s.app.http.get(s.app.url(&path)),
            "POST" => s.app.http.post(s.app.url(&path)),
            _ => s.app.http.delete(s.app.url(&path)),
        };
        let resp = req.bearer_auth(&bound).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    let read_only = s.app.operator_key("read", None).await;
    let resp = s
        .app
        .http
        .post(s.app.url("/api/jobs/replay"))
        .bearer_auth(&read_only)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let global = s.app.operator_key("read,write", None).await;
    let resp = s
        .app
        .http
        .delete(s.app.url(&format!("/api/jobs/{their_id}")))
        .bearer_auth(&global)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(s.app.state.store.get_job(their_id).await.is_err());
}
