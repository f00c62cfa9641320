//! The metrics an operator watches move with what happens: a tenant's sockets and
//! inbox lag, a job kind's dead letters, and a due job no worker takes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use nexus::app::Extras;
use nexus::queue::{Done, JobError, Processor};
use nexus::store::{Enqueued, Job, NewJob};
use nexus_proto::TenantId;
use serde_json::json;
use tokio::sync::Notify;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp, TestDb};

both_profiles!(
    tenant_sockets_and_inbox_lag_follow_the_agents,
    dead_letters_and_a_stale_queue_show_by_kind,
);

/// Gauges read from the database refresh every 5 s: a few rounds of that, at most.
const PATIENCE: Duration = Duration::from_secs(20);

/// The value of the sample `series` (name and labels, exactly as rendered), if listed.
async fn sample(app: &TestApp, series: &str) -> Option<f64> {
    let page = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `/metrics` until `series` reads `want`.
async fn until(app: &TestApp, series: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let got = sample(app, series).await;
        if got == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} is {got:?}, not {want}, after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn tenant_sockets_and_inbox_lag_follow_the_agents(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let key = app.operator_key("write", None).await;
    let sockets = format!(r#"nexus_tenant_ws_connections{{tenant="{}"}}"#, t.id);
    let lag = format!(r#"nexus_inbox_lag_max{{tenant="{}"}}"#, t.id);
    // Listed at 0 before the tenant's first agent connects.
    until(&app, &lag, 0.0).await;
    until(&app, &sockets, 0.0).await;

    let mut agent = app.online(&a, t.id).await;
    until(&app, &sockets, 1.0).await;
    let path = format!("/api/agents/{}/events", a.agent.id);
    for i in 1..=3 {
        let (status, _) = app
            .post_json(&path, &key, json!({"type": "wake_up", "data": {"n": i}}))
            .await;
        assert_eq!(status, 202);
        agent.recv().await;
    }
    // Delivered but not acknowledged.
    until(&app, &lag, 3.0).await;
    agent.send(json!({"type": "ack", "data": {"seq": 3}})).await;
    until(&app, &lag, 0.0).await;
    drop(agent);
    until(&app, &sockets, 0.0).await;

    // A wrong secret counts as a token-endpoint failure (what the alert watches). Other
    // tests in this process count too: ours is at least there.
    let failures = r#"nexus_auth_failures_total{endpoint="token",reason="wrong_secret"}"#;
    let before = sample(&app, failures).await.unwrap_or(0.0);
    let refused = app.token_response(&a.agent.client_id, "nxs_wrong").await;
    assert_eq!(refused.status(), 401);
    assert!(
        sample(&app, failures)
            .await
            .is_some_and(|n| n >= before + 1.0)
    );
}

/// Refuses every job for good.
struct Refuses;

impl Processor for Refuses {
    fn process(&self, _job: Job) -> BoxFuture<'static, Result<Done, JobError>> {
        async { Err(JobError::permanent("provider_rejected", "no such channel")) }.boxed()
    }
}

/// Holds its worker until released.
struct Holds(Arc<Notify>, Arc<Notify>);

impl Processor for Holds {
    fn process(&self, _job: Job) -> BoxFuture<'static, Result<Done, JobError>> {
        let (started, release) = (self.0.clone(), self.1.clone());
        async move {
            started.notify_one();
            release.notified().await;
            Ok(Done::default())
        }
        .boxed()
    }
}

fn job(tenant: TenantId, kind: &str, run_at: i64) -> NewJob {
    NewJob {
        tenant_id: tenant,
        source_id: None,
        source: "test".into(),
        kind: kind.into(),
        dedupe_key: uuid::Uuid::new_v4().to_string(),
        payload: "{}".into(),
        trace_id: None,
        max_attempts: 3,
        run_at,
    }
}

async fn dead_letters_and_a_stale_queue_show_by_kind(p: Profile) {
    // Kinds of this test's own: the recorder is shared by every node in the process.
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let (refused, held) = (
        format!("test.refused.{unique}"),
        format!("test.held.{unique}"),
    );
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let other_jobs: HashMap<String, Arc<dyn Processor>> = HashMap::from([
        (refused.clone(), Arc::new(Refuses) as Arc<dyn Processor>),
        (
            held.clone(),
            Arc::new(Holds(started.clone(), release.clone())) as _,
        ),
    ]);
    let extras = Extras {
        other_jobs,
        ..Extras::default()
    };
    let db = TestDb::new(p).await;
    // One worker, so a held job leaves a due one waiting.
    let app = TestApp::spawn_full(db, |c| c.serve.queue.workers = 1, extras).await;
    let t = app.tenant("acme").await;
    let queue = &app.state.queue;
    let now = queue.clock().now_ms();

    queue
        .enqueue(job(t.id, &refused, now))
        .await
        .expect("enqueue");
    until(
        &app,
        &format!(r#"nexus_jobs_dead_total{{kind="{refused}"}}"#),
        1.0,
    )
    .await;
    let dead = format!(r#"nexus_queue_depth{{kind="{refused}",status="dead"}}"#);
    until(&app, &dead, 1.0).await;

    queue.enqueue(job(t.id, &held, now)).await.expect("enqueue");
    started.notified().await;
    // Due ten minutes ago, and the only worker is busy.
    let waiting = job(t.id, &held, now - 600_000);
    let stored = app.state.store.enqueue(waiting).await.expect("enqueue");
    assert!(matches!(stored, Enqueued::Created(_)));
    let age = format!(r#"nexus_queue_oldest_age_seconds{{kind="{held}"}}"#);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while sample(&app, &age).await.is_none_or(|s| s < 600.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{age} never reached 600"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Freed, the worker takes both: nothing due waits any more.
    release.notify_one();
    started.notified().await;
    release.notify_one();
    until(&app, &age, 0.0).await;
}
