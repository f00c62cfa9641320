//! A database that stops answering — packets dropped, not refused — under a steady
//! webhook stream: every webhook is answered within the request bound, 503 while the
//! database is away, and every one answered 200 reaches its agent once it is back.
//! `/ready` follows the database both ways within 2 s.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::time::Instant;

use crate::agent_client::event;
use crate::helpers::{Profile, TestApp, TestDb};
use crate::postgres_profile;
use crate::proxy::Proxy;
use crate::webhook_support::now_s;

postgres_profile!(
    a_black_holed_database_answers_503_in_time_and_loses_no_accepted_webhook,
    requests_stuck_in_the_database_are_answered_503_within_the_request_bound,
);

/// How long the database stays away. The scenario says 30 s; the behaviour is
/// the same after a few request bounds, and `cargo test` should stay quick.
const OUTAGE: Duration = Duration::from_secs(8);
/// One webhook every this often, each on its own request.
const STREAM_EVERY: Duration = Duration::from_millis(50);
/// Scheduling and HTTP overhead allowed on top of the configured bound.
const MARGIN: Duration = Duration::from_millis(700);
/// `/ready`'s promise, both ways.
const READY_WITHIN: Duration = Duration::from_secs(2);

/// One webhook of the stream: when it was sent and answered (since the test began).
#[derive(Debug)]
struct Answer {
    n: u64,
    sent: Duration,
    answered: Duration,
    status: StatusCode,
    retry_after: bool,
}

async fn a_black_holed_database_answers_503_in_time_and_loses_no_accepted_webhook() {
    let db = TestDb::new(Profile::Postgres).await;
    let proxy = Proxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let url = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    // Retries of jobs that failed during the outage come back within half a second:
    // the scenario is acceptance and delivery, not the retry schedule.
    let app = TestApp::spawn_on(db, |c| {
        c.database_url = url;
        c.serve.queue.backoff_max = Duration::from_millis(500);
    });
    let app = Arc::new(app.await);
    let bound = app.state.config.serve.db.request_timeout;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "downloader").await;
    let source = app.ingest_source(t.id, Some(a.agent.id), None).await;
    let mut agent = app.online(&a, t.id).await;

    let began = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    let stream = tokio::spawn(stream_webhooks(
        app.clone(),
        source.url_path.clone(),
        began,
        stop.clone(),
    ));
    // Flowing first: the agent gets a webhook's event.
    let (kind, mut last_seq, _, data) = event(&agent.recv().await);
    assert_eq!(kind, "wake_up");
    let mut seen = BTreeSet::from([data["payload"]["n"].as_u64().expect("n")]);

    proxy.black_hole();
    let cut = began.elapsed();
    ready_turns(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    tokio::time::sleep_until(began + cut + OUTAGE).await;
    proxy.heal();
    let healed = began.elapsed();
    ready_turns(&app, StatusCode::OK).await;
    // The stream goes on until webhooks are accepted again for a while.
    let mut answers = Vec::new();
    let recovered = began.elapsed() + Duration::from_secs(2);
    tokio::time::sleep_until(began + recovered).await;
    stop.cancel();
    for handle in stream.await.expect("stream") {
        answers.push(handle.await.expect("webhook"));
    }

    for a in &answers {
        let took = a.answered - a.sent;
        assert!(took <= bound + MARGIN, "answered after {took:?}: {a:?}");
        if a.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(a.retry_after, "a 503 says when to retry: {a:?}");
        }
        if a.sent > cut && a.answered < healed {
            assert_eq!(
                a.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "while down: {a:?}"
            );
        }
    }
    let during = answers
        .iter()
        .filter(|a| a.sent > cut && a.answered < healed);
    assert!(during.count() > 10, "the stream ran through the outage");
    assert!(
        answers
            .iter()
            .any(|a| a.sent > recovered - Duration::from_secs(1) && a.status == StatusCode::OK),
        "webhooks are accepted again after the database is back"
    );

    // Every webhook answered 200 reaches the agent, in its inbox's order (seqs one
    // after the other); a 503 one may too, if its commit landed after all.
    let accepted: BTreeSet<u64> = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .map(|a| a.n)
        .collect();
    while !accepted.is_subset(&seen) {
        let (kind, seq, _, data) = event(&agent.recv().await);
        assert_eq!((kind, seq), ("wake_up", last_seq + 1), "in order, no gap");
        last_seq = seq;
        seen.insert(data["payload"]["n"].as_u64().expect("n"));
    }
}

/// Posts a webhook every [`STREAM_EVERY`] until `stop`, each on its own task.
async fn stream_webhooks(
    app: Arc<TestApp>,
    path: String,
    began: Instant,
    stop: tokio_util::sync::CancellationToken,
) -> Vec<tokio::task::JoinHandle<Answer>> {
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(STREAM_EVERY);
    for n in 0.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let (app, path) = (app.clone(), path.clone());
        sent.push(tokio::spawn(async move {
            let body = json!({"n": n}).to_string();
            let sent = began.elapsed();
            let key = format!("webhook-{n}");
            let resp = app
                .post_ingest_response(&path, Some(&key), now_s(), &body)
                .await;
            Answer {
                n,
                sent,
                answered: began.elapsed(),
                status: resp.status(),
                retry_after: resp.headers().contains_key("retry-after"),
            }
        }));
    }
    sent
}

/// Probes `/ready` until it answers `want`, which must come within [`READY_WITHIN`].
async fn ready_turns(app: &TestApp, want: StatusCode) {
    let asked = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    loop {
        pace.tick().await;
        let resp = app.http.get(app.url("/ready")).send().await.expect("ready");
        if resp.status() == want {
            break;
        }
        let body: Value = resp.json().await.unwrap_or_default();
        assert!(
            asked.elapsed() < READY_WITHIN * 5,
            "/ready never turned {want}: {body}"
        );
    }
    let took = asked.elapsed();
    assert!(took < READY_WITHIN, "/ready took {took:?} to turn {want}");
}

/// A database that takes any time over a request (here: a lock held by another
/// session, with the server's statement limit out of the way) costs a webhook, an API
/// call and a token request the request bound, answered 503 with `Retry-After`.
async fn requests_stuck_in_the_database_are_answered_503_within_the_request_bound() {
    let app = TestApp::spawn_with(Profile::Postgres, |c| {
        c.serve.db.statement_timeout = Duration::from_secs(60);
    })
    .await;
    let bound = app.state.config.serve.db.request_timeout;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let source = app.ingest_source(t.id, Some(a.agent.id), None).await;
    let key = app.operator_key("read", None).await;
    let stats = || {
        app.http
            .get(app.url("/api/queue/stats"))
            .bearer_auth(&key)
            .send()
    };
    let token = || app.token_response(&a.agent.client_id, &a.client_secret);
    let (app, path) = (&app, source.url_path.as_str());
    let webhook = |n: u64| async move {
        let body = json!({"n": n}).to_string();
        let key = format!("stuck-{n}");
        app.post_ingest_response(path, Some(&key), now_s(), &body)
            .await
    };
    assert_eq!(stats().await.expect("stats").status(), StatusCode::OK);

    let mut holder = sqlx::PgConnection::connect(&app.db.url)
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN; LOCK TABLE jobs, agents IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .expect("lock");
    let asked = Instant::now();
    let all = async { tokio::join!(stats(), token(), webhook(1)) };
    let (stats_resp, token_resp, webhook_resp) = tokio::time::timeout(bound * 5, all)
        .await
        .expect("every request answered while the lock is held");
    let took = asked.elapsed();
    assert!(took <= bound + MARGIN, "answered after {took:?}");
    let stats_resp = stats_resp.expect("stats");
    for resp in [&stats_resp, &token_resp, &webhook_resp] {
        assert_eq!(
            resp.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            resp.url()
        );
        assert!(resp.headers().contains_key("retry-after"), "{}", resp.url());
    }
    let oauth: Value = token_resp.json().await.expect("json");
    assert_eq!(oauth["error"], "temporarily_unavailable");
    let api: Value = stats_resp.json().await.expect("json");
    assert_eq!(api["error"]["code"], "unavailable");

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    assert_eq!(stats().await.expect("stats").status(), StatusCode::OK);
    assert_eq!(token().await.status(), StatusCode::OK);
    assert_eq!(webhook(2).await.status(), StatusCode::OK);
}
