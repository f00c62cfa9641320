//! `POST /api/workers/heartbeat` and `GET /api/workers`: a worker's report stored and
//! listed (to its tenant only), every bad field named, the stale flag, and one signed
//! `worker_failing` alert per failure streak.

use std::time::{Duration, Instant};

use nexus_proto::TenantId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::alerts_api::receiver;
use crate::both_profiles;
use crate::helpers::{Profile, TestApp};
use crate::operator_api::call;

both_profiles!(
    a_heartbeat_is_stored_and_listed,
    workers_are_listed_to_their_tenant_only,
    every_bad_field_is_named,
    a_worker_not_heard_from_is_stale,
    a_failure_streak_alerts_once,
);

const PATIENCE: Duration = Duration::from_secs(15);

fn report(host: &str) -> Value {
    json!({
        "host": host, "version": "0.9.1", "interval_s": 60,
        "started_at": "2026-12-01T08:00:00Z", "last_scan_at": "2026-12-01T09:00:00Z",
        "last_upload_at": null, "sessions_seen": 12, "uploaded": 10, "queued": 1,
        "failing": 1, "parked": 0, "consecutive_failures": 0, "alert_after": 3,
        "last_error": null,
    })
}

async fn beat(app: &TestApp, token: &str, body: &Value) -> (StatusCode, Value) {
    let resp = app
        .http
        .post(app.url("/api/workers/heartbeat"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("send");
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

async fn agent_token(
    app: &TestApp,
    tenant: TenantId,
    name: &str,
) -> (nexus_proto::AgentId, String) {
    let agent = app.agent(tenant, name).await.agent.id;
    (agent, app.token_for(agent, tenant))
}

async fn a_heartbeat_is_stored_and_listed(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await.id;
    let (agent, token) = agent_token(&app, t, "alice").await;
    let key = app.operator_key("read", None).await;

    assert_eq!(
        beat(&app, &token, &report("box-1")).await.0,
        StatusCode::NO_CONTENT
    );
    let mut later = report("box-1");
    later["uploaded"] = json!(11);
    later["last_upload_at"] = json!("2026-12-01T09:01:00Z");
    assert_eq!(beat(&app, &token, &later).await.0, StatusCode::NO_CONTENT);

    let listed = app.get_json("/api/workers", &key).await;
    let workers = listed["workers"].as_array().expect("list");
    assert_eq!(workers.len(), 1, "{listed}");
    let w = &workers[0];
    assert_eq!(w["agent_id"], agent.to_string());
    assert_eq!(w["agent_name"], "alice");
    assert_eq!(w["tenant_id"], t.to_string());
    assert_eq!(
        (&w["host"], &w["version"], &w["interval_s"]),
        (&json!("box-1"), &json!("0.9.1"), &json!(60))
    );
    assert_eq!(w["started_at"], "2026-12-01T08:00:00.000Z");
    assert_eq!(w["last_upload_at"], "2026-12-01T09:01:00.000Z");
    assert_eq!(
        (&w["uploaded"], &w["queued"], &w["failing"]),
        (&json!(11), &json!(1), &json!(1))
    );
    assert_eq!(
        (&w["stale"], &w["last_error"]),
        (&json!(false), &Value::Null)
    );
    assert_eq!(listed["next_cursor"], Value::Null);

    // Another host of the same agent is another worker; pages walk them in order.
    assert_eq!(
        beat(&app, &token, &report("box-2")).await.0,
        StatusCode::NO_CONTENT
    );
    let first = app.get_json("/api/workers?limit=1", &key).await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = app
        .get_json(&format!("/api/workers?limit=1&cursor={cursor}"), &key)
        .await;
    assert_eq!(first["workers"][0]["host"], "box-1");
    assert_eq!(second["workers"][0]["host"], "box-2");
    assert_eq!(second["next_cursor"], Value::Null);
}

async fn workers_are_listed_to_their_tenant_only(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (acme, other) = (app.tenant("acme").await.id, app.tenant("other").await.id);
    let (alice, token_a) = agent_token(&app, acme, "alice").await;
    let (_, token_o) = agent_token(&app, other, "olga").await;
    beat(&app, &token_a, &report("a-host")).await;
    beat(&app, &token_o, &report("o-host")).await;

    let bound = app.operator_key("read", Some(acme)).await;
    let seen = app.get_json("/api/workers", &bound).await;
    let hosts: Vec<&Value> = seen["workers"]
        .as_array()
        .expect("list")
        .iter()
        .map(|w| &w["host"])
        .collect();
    assert_eq!(hosts, [&json!("a-host")]);
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/workers?tenant={other}"),
        &bound,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let global = app.operator_key("read", None).await;
    let all = app.get_json("/api/workers", &global).await;
    assert_eq!(all["workers"].as_array().expect("list").len(), 2);
    let alices = app
        .get_json(&format!("/api/workers?agent={alice}"), &global)
        .await;
    assert_eq!(alices["workers"].as_array().expect("list").len(), 1);
    // A deleted tenant's workers go with it.
    let admin = app.operator_key("admin", None).await;
    let path = format!("/api/tenants/{other}");
    let (status, _) = call(&app, Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let left = app.get_json("/api/workers", &global).await;
    assert_eq!(left["workers"].as_array().expect("list").len(), 1, "{left}");
    // A heartbeat needs an agent's token; listing needs an operator key.
    assert_eq!(
        beat(&app, &global, &report("x")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = call(&app, Method::GET, "/api/workers", &token_a, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn every_bad_field_is_named(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await.id;
    let (_, token) = agent_token(&app, t, "alice").await;
    let cases = [
        ("host", json!("")),
        ("host", json!("h".repeat(256))),
        ("interval_s", json!(0)),
        ("interval_s", json!(3601)),
        ("started_at", json!("yesterday")),
        ("last_scan_at", json!(5)),
        ("uploaded", json!(-1)),
        ("alert_after", json!(u64::from(u32::MAX) + 1)),
        ("last_error", json!("e".repeat(1001))),
    ];
    for (field, value) in cases {
        let mut body = report("box");
        body[field] = value;
        let (status, v) = beat(&app, &token, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {v}");
        assert_eq!(v["error"]["code"], "invalid", "{field}: {v}");
        assert!(
            v["error"]["details"]["fields"][field].is_string(),
            "{field}: {v}"
        );
    }
    let mut body = report("box");
    body.as_object_mut().expect("object").remove("version");
    let (status, v) = beat(&app, &token, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["details"]["fields"]["version"].is_string(),
        "{v}"
    );
    let key = app.operator_key("read", None).await;
    let listed = app.get_json("/api/workers", &key).await;
    assert_eq!(listed["workers"], json!([]), "nothing stored");
}

async fn a_worker_not_heard_from_is_stale(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await.id;
    let (_, token) = agent_token(&app, t, "alice").await;
    let key = app.operator_key("read", None).await;
    let mut body = report("box");
    body["interval_s"] = json!(1);
    let sent = Instant::now();
    assert_eq!(beat(&app, &token, &body).await.0, StatusCode::NO_CONTENT);

    // Stale only past 3 × interval_s: polled until it turns, never before 3 s.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let listed = app.get_json("/api/workers", &key).await;
        let stale = listed["workers"][0]["stale"].as_bool().expect("stale");
        if stale {
            assert!(
                sent.elapsed() >= Duration::from_secs(3),
                "{:?}",
                sent.elapsed()
            );
            break;
        }
        assert!(Instant::now() < deadline, "never stale: {listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A new heartbeat makes it fresh again.
    beat(&app, &token, &body).await;
    let listed = app.get_json("/api/workers", &key).await;
    assert_eq!(listed["workers"][0]["stale"], false);
}

async fn a_failure_streak_alerts_once(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (hook, mut received) = receiver().await;
    let admin = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await.id;
    let (agent, token) = agent_token(&app, t, "alice").await;
    let alert =
        json!({"tenant_id": t, "period": "day", "threshold_usd": 100.0, "webhook_url": hook});
    let (status, made) = call(&app, Method::POST, "/api/alerts", &admin, Some(alert)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["webhook_secret"].as_str().expect("secret").to_owned();
    let mut outcomes = app.state.queue.subscribe();

    // 1, 2 failures: under alert_after (3); 3 crosses it; 4 is the same streak.
    for failures in 1..=4 {
        let mut body = report("box");
        body["consecutive_failures"] = json!(failures);
        body["last_error"] = json!(format!("upload failed: 503 (#{failures})"));
        assert_eq!(beat(&app, &token, &body).await.0, StatusCode::NO_CONTENT);
    }

    let (headers, raw) = tokio::time::timeout(PATIENCE, received.recv())
        .await
        .expect("the alert within the patience window")
        .expect("received");
    let header = |name: &str| headers[name].to_str().expect("ascii").to_owned();
    let (ts, idem) = (header("x-nexus-timestamp"), header("idempotency-key"));
    let signed = nexus::alerts::signature(&secret, ts.parse().expect("ts"), &idem, &raw);
    assert_eq!(header("x-nexus-signature"), signed);
    let sent: Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(sent["type"], "worker_failing");
    assert_eq!(
        (&sent["tenant_id"], &sent["agent_id"]),
        (&json!(t), &json!(agent))
    );
    assert_eq!(
        (&sent["host"], &sent["consecutive_failures"]),
        (&json!("box"), &json!(3))
    );
    assert_eq!(sent["last_error"], "upload failed: 503 (#3)");
    // Its job is done, and it was the only one: the 4th heartbeat queued nothing.
    loop {
        let o = tokio::time::timeout(PATIENCE, outcomes.recv())
            .await
            .expect("the job's outcome")
            .expect("outcomes");
        if o.kind == "alert.send" {
            assert_eq!(o.status, nexus::store::JobStatus::Done, "{o:?}");
            break;
        }
    }
    let jobs = app.get_json("/api/jobs?kind=alert.send", &admin).await;
    assert_eq!(jobs["jobs"].as_array().expect("jobs").len(), 1, "{jobs}");
    assert!(received.try_recv().is_err(), "told once");

    // A success ends the streak; the next one that reaches 3 is told again.
    for failures in [0, 3] {
        let mut body = report("box");
        body["consecutive_failures"] = json!(failures);
        beat(&app, &token, &body).await;
    }
    let (_, raw) = tokio::time::timeout(PATIENCE, received.recv())
        .await
        .expect("the second streak's alert")
        .expect("received");
    let sent: Value = serde_json::from_slice(&raw).expect("json");
    assert_eq!(sent["type"], "worker_failing");
}
