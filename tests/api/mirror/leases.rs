//! Two nodes on one PostgreSQL and one job queue: leases and write intents keep each
//! Slack post to one, whichever node runs the job and however long the provider takes.

use std::time::Duration;

use nexus::config::Config;
use nexus::store::JobStatus;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Mirror, WEBHOOK, history, setup_with};
use crate::fake_providers::task_json;
use crate::helpers::{Profile, TestApp, TestDb};
use crate::postgres_profile;

postgres_profile!(
    a_provider_stalling_past_the_lease_is_written_once,
    a_job_waiting_for_another_nodes_write_spends_no_attempt,
);

const LEASE: Duration = Duration::from_millis(900);

/// One worker per node, so a second job goes to the other node while the first is busy.
fn tweak(c: &mut Config) {
    c.serve.queue.workers = 1;
    c.serve.queue.lease = LEASE;
}

/// The mirror fixture on node A, and node B on the same database and fake providers.
async fn two_nodes() -> (Mirror, TestApp) {
    let m = setup_with(Profile::Postgres, true, tweak).await;
    let (slack, clickup) = (m.fake.slack_url(), m.fake.clickup_url());
    let b = TestApp::spawn_on(TestDb::shared(&m.app.db.url), |c| {
        c.serve.providers.slack_api_url = slack;
        c.serve.providers.clickup_api_url = clickup;
        tweak(c);
    })
    .await;
    (m, b)
}

/// Posts a signed ClickUp webhook to `node`; returns its job's id.
async fn clickup_webhook(node: &TestApp, event: &str, hist: &str) -> Uuid {
    let history = history(hist, "183", None);
    let body =
        json!({"event": event, "task_id": "T1", "webhook_id": WEBHOOK, "history_items": [history]})
            .to_string();
    let (status, resp) = node.post_clickup("/webhooks/clickup", &body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    resp["job_id"]
        .as_str()
        .expect("job_id")
        .parse()
        .expect("uuid")
}

/// Waits until the fake has had `n` requests to `path` (the test's observable point).
async fn requests_reach(m: &Mirror, path: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while m.fake.requests_to(path).len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} requests to {path}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn job(m: &Mirror, id: Uuid) -> Value {
    m.app.get_json(&format!("/api/jobs/{id}"), &m.reader).await
}

async fn a_provider_stalling_past_the_lease_is_written_once() {
    let (mut m, _b) = two_nodes().await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    m.fake.hold("/slack/chat.postMessage");
    let data = json!({"request_id": "r1", "tool": "slack.post_message",
                      "args": {"channel": "C1", "text": "hello"}, "timeout_ms": 60_000});
    alice
        .send(json!({"type": "tool_request", "data": data}))
        .await;
    requests_reach(&m, "/slack/chat.postMessage", 1).await;
    // The stall is the scenario: three leases pass while Slack sits on the request.
    tokio::time::sleep(LEASE * 3).await;
    m.fake.release("/slack/chat.postMessage");
    let result = m
        .tool(
            &mut alice,
            "r1",
            "slack.post_message",
            data["args"].clone(),
            None,
        )
        .await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(m.fake.requests_to("/slack/chat.postMessage").len(), 1);
    let done = m.finished_tool_job().await;
    assert_eq!(
        (done["status"].as_str(), done["attempts"].as_u64()),
        (Some("done"), Some(1)),
        "the lease was kept while the provider stalled: {done}"
    );
}

async fn a_job_waiting_for_another_nodes_write_spends_no_attempt() {
    let (mut m, b) = two_nodes().await;
    m.fake
        .put_task(task_json("T1", "Fix login", "in progress", "L1", &[111]));
    m.fake.hold("/slack/chat.postMessage");
    // The first job opens the task's thread and is stuck in Slack, holding its one worker.
    let first = clickup_webhook(&m.app, "taskCreated", "h1").await;
    requests_reach(&m, "/slack/chat.postMessage", 1).await;
    // The second, on the other node, wants the same thread: it waits its turn.
    let second = clickup_webhook(&b, "taskStatusUpdated", "h2").await;
    let mut b_outcomes = b.state.queue.subscribe();
    let waited = loop {
        let o = tokio::time::timeout(Duration::from_secs(15), b_outcomes.recv())
            .await
            .expect("an outcome in time")
            .expect("outcomes");
        if o.job_id == second {
            break o;
        }
    };
    assert_eq!(waited.status, JobStatus::Queued, "{waited:?}");
    assert!(
        waited
            .error
            .as_deref()
            .is_some_and(|e| e.contains("another job is making the write")),
        "{waited:?}"
    );

    m.fake.release("/slack/chat.postMessage");
    assert_eq!(
        m.finished(|o| o.job_id == first).await.status,
        JobStatus::Done
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let second_job = loop {
        let j = job(&m, second).await;
        if j["status"] == "done" {
            break j;
        }
        assert!(tokio::time::Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(second_job["attempts"], 1, "{second_job}");
    assert_eq!(second_job["attempts_log"], json!([]), "{second_job}");
    assert_eq!(m.fake.slack_messages().len(), 1, "one thread for the task");
}
