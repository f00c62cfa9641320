//! Cost alerts: added through the API, fired once per period when the priced usage of
//! sessions reaches the threshold, sent to a local receiver that checks the signature,
//! and to Slack through the tenant's source.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use nexus::store::SourceKind;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::both_profiles;
use crate::cli::{json_lines, nexus, one};
use crate::fake_providers::{FakeProviders, SLACK_BOT_TOKEN};
use crate::helpers::{Profile, TestApp, TestDb};
use crate::operator_api::call;

both_profiles!(
    an_alert_fires_once_per_period_signed_and_to_slack,
    alerts_are_checked_and_kept_to_their_tenant,
    the_cli_adds_lists_and_removes_alerts,
);

/// What the receiver got: headers and body.
pub type Received = (HeaderMap, Bytes);

/// A local webhook receiver: every POST to `/hook` is passed on.
pub async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

/// The test's price: model `m` costs a dollar per thousand input tokens.
fn prices() -> nexus::config::Prices {
    let table = "[models.m]\ninput = 1000.0\noutput = 0.0\ncache_read = 0.0\ncache_write = 0.0\n";
    nexus::config::Prices::parse(table).expect("prices")
}

/// The start of the UTC day after `ms`.
fn period_start_after(ms: i64) -> i64 {
    (ms / 86_400_000 + 1) * 86_400_000
}

async fn upload(
    app: &TestApp,
    agent: &nexus::admin::AgentWithSecret,
    tenant: nexus_proto::TenantId,
    input_tokens: u64,
    started_ms: i64,
) {
    let now = nexus::time::rfc3339(started_ms);
    let body = json!({
        "session_id": uuid::Uuid::new_v4(), "source": "custom",
        "started_at": now, "ended_at": now, "transcript": "t",
        "usage": [{"model": "m", "input_tokens": input_tokens, "output_tokens": 0}],
    });
    let resp = app
        .http
        .post(app.url("/api/sessions"))
        .bearer_auth(app.token_for(agent.agent.id, tenant))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::CREATED);
}

async fn an_alert_fires_once_per_period_signed_and_to_slack(p: Profile) {
    let fake = FakeProviders::start().await;
    let slack_url = fake.slack_url();
    let app = TestApp::spawn_with(p, |c| c.serve.providers.slack_api_url = slack_url).await;
    let (hook, mut received) = receiver().await;
    let key = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "alice").await;
    let mut source =
        crate::webhook_support::spec(t.id, SourceKind::Slack, "T001", "slack-signing-secret");
    source.api_token = Some(SLACK_BOT_TOKEN.into());
    nexus::admin::add_source(&app.state.store, &nexus::admin::Actor::Cli, source)
        .await
        .expect("slack source");
    let body = json!({
        "tenant_id": t.id, "agent_id": a.agent.id, "period": "day", "threshold_usd": 5.0,
        "webhook_url": hook, "slack_channel": "C0ALERTS",
    });
    let (status, made) = call(&app, Method::POST, "/api/alerts", &key, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["webhook_secret"]
        .as_str()
        .expect("secret, once")
        .to_owned();
    let (store, queue) = (&app.state.store, &app.state.queue);
    let mut outcomes = queue.subscribe();
    let prices = prices();
    let now = nexus::time::now_ms();

    // $4 so far: under the threshold, nothing fires.
    upload(&app, &a, t.id, 4000, now).await;
    assert_eq!(
        nexus::alerts::evaluate(store, queue, &prices, now)
            .await
            .expect("round"),
        0
    );
    // $7: over it. It fires once, however many rounds see it.
    upload(&app, &a, t.id, 3000, now).await;
    assert_eq!(
        nexus::alerts::evaluate(store, queue, &prices, now)
            .await
            .expect("round"),
        1
    );
    assert_eq!(
        nexus::alerts::evaluate(store, queue, &prices, now)
            .await
            .expect("round"),
        0
    );
    let (headers, raw) = tokio::time::timeout(Duration::from_secs(15), received.recv())
        .await
        .expect("the alert within the patience window")
        .expect("received");
    let header = |name: &str| headers[name].to_str().expect("ascii").to_owned();
    let (ts, idem) = (header("x-nexus-timestamp"), header("idempotency-key"));
    let signed = nexus::alerts::signature(&secret, ts.parse().expect("ts"), &idem, &raw);
    assert_eq!(
        header("x-nexus-signature"),
        signed,
        "signed with the alert's secret"
    );
    let sent: Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(sent["type"], "cost_alert");
    assert_eq!(sent["spend_usd"], 7.0);
    assert_eq!(sent["threshold_usd"], 5.0);
    assert_eq!(sent["agent_id"], a.agent.id.to_string());
    assert!(idem.starts_with(made["id"].as_str().expect("id")));
    // The same job told Slack, once.
    let done = loop {
        let o = tokio::time::timeout(Duration::from_secs(15), outcomes.recv())
            .await
            .expect("the job's outcome within the patience window")
            .expect("outcomes");
        if o.kind == "alert.send" {
            break o;
        }
    };
    assert_eq!(done.status, nexus::store::JobStatus::Done, "{done:?}");
    let posted: Vec<Value> = fake
        .slack_messages()
        .into_iter()
        .filter(|m| m["channel"] == "C0ALERTS")
        .collect();
    assert_eq!(posted.len(), 1);
    assert!(
        posted[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("$7.00"))
    );
    // Tomorrow is a new period, with its own spend: $6 fires again.
    let tomorrow = period_start_after(now);
    upload(&app, &a, t.id, 6000, tomorrow).await;
    let later = tomorrow + 3_600_000;
    assert_eq!(
        nexus::alerts::evaluate(store, queue, &prices, later)
            .await
            .expect("round"),
        1
    );
    let (_, raw) = tokio::time::timeout(Duration::from_secs(15), received.recv())
        .await
        .expect("the second alert")
        .expect("received");
    let sent: Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(sent["spend_usd"], 6.0);
    let (_, firings) = call(&app, Method::GET, "/api/alerts/firings", &key, None).await;
    let spent: Vec<&Value> = firings["firings"]
        .as_array()
        .expect("list")
        .iter()
        .map(|f| &f["spend_usd"])
        .collect();
    assert_eq!(
        spent,
        [&json!(6.0), &json!(7.0)],
        "one firing a period, newest first"
    );
}

async fn alerts_are_checked_and_kept_to_their_tenant(p: Profile) {
    let app = TestApp::spawn(p).await;
    let key = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await;
    let other = app.tenant("other").await;
    let field = |body: &Value| {
        let fields = body["error"]["details"]["fields"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        fields.keys().cloned().collect::<Vec<_>>()
    };
    for (bad, named) in [
        (
            json!({"tenant_id": t.id, "period": "day", "threshold_usd": 0, "webhook_url": "https://x.example"}),
            "threshold_usd",
        ),
        (
            json!({"tenant_id": t.id, "period": "day", "threshold_usd": 1}),
            "webhook_url",
        ),
        (
            json!({"tenant_id": t.id, "period": "day", "threshold_usd": 1, "webhook_url": "ftp://x"}),
            "webhook_url",
        ),
        (
            json!({"tenant_id": t.id, "period": "day", "threshold_usd": 1, "slack_channel": "# general"}),
            "slack_channel",
        ),
    ] {
        let (status, body) = call(&app, Method::POST, "/api/alerts", &key, Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(field(&body), [named]);
    }
    let ok = json!({"tenant_id": t.id, "period": "month", "threshold_usd": 100, "slack_channel": "C0ALERTS"});
    let (status, made) = call(&app, Method::POST, "/api/alerts", &key, Some(ok)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(made["webhook_secret"], Value::Null);
    let theirs = app.operator_key("admin", Some(other.id)).await;
    let (_, seen) = call(&app, Method::GET, "/api/alerts", &theirs, None).await;
    assert_eq!(seen["alerts"], json!([]));
    let path = format!("/api/alerts/{}", made["id"].as_str().expect("id"));
    assert_eq!(
        call(&app, Method::DELETE, &path, &theirs, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, Method::DELETE, &path, &key, None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, left) = call(&app, Method::GET, "/api/alerts", &key, None).await;
    assert_eq!(left["alerts"], json!([]));
}

async fn the_cli_adds_lists_and_removes_alerts(p: Profile) {
    let db = TestDb::new(p).await;
    let tenant = one(&nexus(&db, &["tenant", "create", "--name", "acme"]));
    let t = tenant["id"].as_str().expect("id");
    let added = one(&nexus(
        &db,
        &[
            "alert",
            "add",
            "--tenant",
            t,
            "--period",
            "month",
            "--threshold-usd",
            "12.5",
            "--webhook-url",
            "http://127.0.0.1:9/hook",
        ],
    ));
    assert_eq!(added["threshold_usd"], 12.5);
    assert!(
        added["webhook_secret"]
            .as_str()
            .is_some_and(|s| s.len() > 20)
    );
    let listed = json_lines(&nexus(&db, &["alert", "list", "--tenant", t]));
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].get("webhook_secret").is_none(),
        "the secret is shown once"
    );
    let id = added["id"].as_str().expect("id");
    assert_eq!(one(&nexus(&db, &["alert", "remove", id]))["removed"], id);
    assert!(json_lines(&nexus(&db, &["alert", "list"])).is_empty());
    let refused = nexus(
        &db,
        &[
            "alert",
            "add",
            "--tenant",
            t,
            "--period",
            "week",
            "--threshold-usd",
            "1",
            "--slack-channel",
            "C1",
        ],
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("expected day or month"));
}
