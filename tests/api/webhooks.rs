//! Webhook intake: signatures, dedupe (also under concurrency), the error contract,
//! and the generic ingest path delivering to an agent's inbox.

use reqwest::StatusCode;
use serde_json::json;

use crate::agent_client::event;
use crate::both_profiles;
use crate::helpers::{Profile, TestApp, TestDb};
use crate::webhook_support::*;

both_profiles!(
    slack_event_is_accepted_once_and_retries_are_duplicates,
    slack_signatures_and_timestamps_are_enforced,
    slack_url_verification_echoes_and_stores_nothing,
    concurrent_identical_deliveries_make_one_job,
    malformed_and_oversized_bodies,
    clickup_signature_and_history_dedupe,
    a_clickup_delivery_of_many_history_items_is_stored_once,
    ingest_by_hmac_or_token_reaches_the_agent,
    storage_outage_is_503_and_nothing_is_acknowledged,
);

async fn slack_event_is_accepted_once_and_retries_are_duplicates(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let source = app.slack_source(t.id, "T001").await;
    let body = slack_event("Ev001", "T001");
    let (status, first) = app
        .post_slack("/webhooks/slack", &body, now_s(), SLACK_SECRET)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["status"], "accepted");
    // Slack retries (X-Slack-Retry-Num), also on the source's own URL: the same job.
    let (status, again) = app
        .post_slack(&source.url_path, &body, now_s(), SLACK_SECRET)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["job_id"], first["job_id"]);
    assert_eq!(app.job_count().await, 1);
    let id: uuid::Uuid = first["job_id"].as_str().expect("id").parse().expect("uuid");
    let (job, _) = app.state.store.get_job(id).await.expect("job");
    assert_eq!(
        (
            job.source.as_str(),
            job.kind.as_str(),
            job.dedupe_key.as_str()
        ),
        (
            "slack",
            "slack.event",
            format!("{}:Ev001", source.id).as_str()
        )
    );
    assert_eq!(job.tenant_id, t.id);
    assert_eq!(job.payload, body, "the raw body is stored");
    assert!(job.trace_id.is_some());
}

async fn slack_signatures_and_timestamps_are_enforced(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    app.slack_source(t.id, "T001").await;
    let body = slack_event("Ev002", "T001");
    for (what, ts, secret) in [
        ("wrong secret", now_s(), "not-the-secret"),
        ("stale timestamp", now_s() - 301, SLACK_SECRET),
        ("future timestamp", now_s() + 301, SLACK_SECRET),
    ] {
        let (status, resp) = app.post_slack("/webhooks/slack", &body, ts, secret).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(resp["error"]["code"], "invalid_signature", "{what}");
    }
    let unsigned = app
        .http
        .post(app.url("/webhooks/slack"))
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    let (status, resp) = app
        .post_slack(
            "/webhooks/slack",
            &slack_event("Ev003", "T999"),
            now_s(),
            SLACK_SECRET,
        )
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_source"))
    );
    assert_eq!(app.job_count().await, 0, "nothing refused was stored");
}

async fn slack_url_verification_echoes_and_stores_nothing(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let source = app.slack_source(t.id, "T001").await;
    let body = json!({"type": "url_verification", "token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}).to_string();
    let (status, resp) = app
        .post_slack(&source.url_path, &body, now_s(), SLACK_SECRET)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        resp["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    let (status, _) = app
        .post_slack(&source.url_path, &body, now_s(), "forged")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Without the source in the URL it names no team: refused, no secret tried.
    let (status, resp) = app
        .post_slack("/webhooks/slack", &body, now_s(), SLACK_SECRET)
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_source"))
    );
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("/webhooks/slack/")
    );
    assert_eq!(app.job_count().await, 0);
}

async fn concurrent_identical_deliveries_make_one_job(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    app.slack_source(t.id, "T001").await;
    let body = slack_event("EvSame", "T001");
    let ts = now_s();
    let sends = (0..8).map(|_| app.post_slack("/webhooks/slack", &body, ts, SLACK_SECRET));
    let results = futures_util::future::join_all(sends).await;
    let mut accepted = 0;
    let mut ids = std::collections::HashSet::new();
    for (status, resp) in &results {
        assert_eq!(*status, StatusCode::OK, "{resp}");
        if resp["status"] == "accepted" {
            accepted += 1;
        } else {
            assert_eq!(resp["status"], "duplicate");
        }
        ids.insert(resp["job_id"].as_str().expect("id").to_owned());
    }
    assert_eq!((accepted, ids.len()), (1, 1));
    assert_eq!(app.job_count().await, 1);
}

async fn malformed_and_oversized_bodies(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let source = app.slack_source(t.id, "T001").await;
    let (status, resp) = app
        .post_slack(&source.url_path, "{not json", now_s(), SLACK_SECRET)
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed"))
    );
    let (status, _) = app
        .post_slack(
            &source.url_path,
            &json!({"type": "event_callback", "team_id": "T001"}).to_string(),
            now_s(),
            SLACK_SECRET,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an event without event_id");
    let odd_ts = json!({"type": "event_callback", "team_id": "T001", "event_id": "Ev1",
                        "event": {"type": "message", "channel": "C1", "user": "U1", "ts": "yesterday"}});
    let (status, resp) = app
        .post_slack(&source.url_path, &odd_ts.to_string(), now_s(), SLACK_SECRET)
        .await;
    // An event of a shape Nexus does not read is stored and ignored by its job, not
    // refused: Slack would retry a refusal (see mirror::slack's test).
    assert_eq!(
        (status, resp["status"].as_str()),
        (StatusCode::OK, Some("accepted"))
    );
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let (status, resp) = app
        .post_slack(&source.url_path, &huge, now_s(), SLACK_SECRET)
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    assert_eq!(
        app.job_count().await,
        1,
        "only the well-formed envelope was stored"
    );
}

async fn clickup_signature_and_history_dedupe(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let source = app.clickup_source(t.id, "wh-1").await;
    let body = json!({"event": "taskCreated", "task_id": "86a1", "webhook_id": "wh-1",
                      "history_items": [{"id": "2800763136717140857", "type": 1, "field": "status"}]})
    .to_string();
    let sig = hmac_hex(CLICKUP_SECRET, body.as_bytes());
    let (status, first) = app
        .post_signed("/webhooks/clickup", "x-signature", sig.clone(), &body)
        .await;
    assert_eq!(
        (status, first["status"].as_str()),
        (StatusCode::OK, Some("accepted"))
    );
    let (_, again) = app
        .post_signed(&source.url_path, "x-signature", sig, &body)
        .await;
    assert_eq!(again["status"], "duplicate");
    let (status, resp) = app
        .post_signed(
            "/webhooks/clickup",
            "x-signature",
            hmac_hex("wrong", body.as_bytes()),
            &body,
        )
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_signature"))
    );
    let other = body.replace("wh-1", "wh-unknown");
    let (status, _) = app.post_clickup("/webhooks/clickup", &other).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let id: uuid::Uuid = first["job_id"].as_str().expect("id").parse().expect("uuid");
    let key = app.operator_key("read", None).await;
    let job = app.get_json(&format!("/api/jobs/{id}"), &key).await;
    assert_eq!(
        (job["source"].as_str(), job["dedupe_key"].as_str()),
        (
            Some("clickup"),
            Some(format!("{}:wh-1:2800763136717140857", source.id).as_str())
        )
    );
}

/// The delivery id of many history items is longer than PostgreSQL indexes (about
/// 2.7 kB per index row): it must still be stored, once.
async fn a_clickup_delivery_of_many_history_items_is_stored_once(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    app.clickup_source(t.id, "wh-1").await;
    // Ids that do not compress, as real ones don't.
    let mut x: u64 = 2_800_763_136_717_140_857;
    let items: Vec<_> = (0..300)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            json!({"id": x.to_string(), "type": 1, "field": "assignee_add"})
        })
        .collect();
    let body = json!({"event": "taskUpdated", "task_id": "86a1", "webhook_id": "wh-1",
                      "history_items": items})
    .to_string();
    let (status, first) = app.post_clickup("/webhooks/clickup", &body).await;
    assert_eq!(
        (status, first["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{first}"
    );
    let (_, again) = app.post_clickup("/webhooks/clickup", &body).await;
    assert_eq!(
        (again["status"].as_str(), &again["job_id"]),
        (Some("duplicate"), &first["job_id"])
    );
    assert_eq!(app.job_count().await, 1);
}

async fn ingest_by_hmac_or_token_reaches_the_agent(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "downloader").await;
    let source = app.ingest_source(t.id, Some(a.agent.id), None).await;
    let mut agent = app.online(&a, t.id).await;

    let body =
        json!({"transfer": {"id": 42, "name": "ubuntu.iso", "status": "COMPLETED"}}).to_string();
    let (status, resp) = app
        .post_ingest(&source.url_path, None, now_s(), &body)
        .await;
    assert_eq!(
        (status, resp["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{resp}"
    );
    let (kind, _, _, data) = event(&agent.recv().await);
    assert_eq!(kind, "wake_up");
    assert_eq!(data["source"], "putio");
    assert_eq!(data["payload"]["transfer"]["name"], "ubuntu.iso");

    // A bearer token works too; the Idempotency-Key dedupes.
    let body2 = json!({"transfer": {"id": 43}}).to_string();
    for expected in ["accepted", "duplicate"] {
        let resp = app
            .http
            .post(app.url(&source.url_path))
            .bearer_auth(INGEST_SECRET)
            .header("idempotency-key", "transfer-43")
            .body(body2.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.json::<serde_json::Value>().await.expect("json")["status"],
            expected
        );
    }
    assert_eq!(
        event(&agent.recv().await).3["payload"]["transfer"]["id"],
        43
    );
    let (status, _) = app
        .post_signed(
            &source.url_path,
            "authorization",
            "Bearer nope".into(),
            &body2,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post_signed(
            &source.url_path,
            "authorization",
            format!("Bearer {INGEST_SECRET}"),
            "not json",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn storage_outage_is_503_and_nothing_is_acknowledged(p: Profile) {
    let db = TestDb::new(p).await;
    // PostgreSQL goes through a proxy the test can cut; SQLite's pool is closed under the node.
    let proxy = match p {
        Profile::Postgres => {
            Some(crate::proxy::Proxy::start("127.0.0.1:5432".parse().expect("addr")).await)
        }
        Profile::Sqlite => None,
    };
    let url = match &proxy {
        Some(proxy) => db.url.replace("127.0.0.1:5432", &proxy.addr.to_string()),
        None => db.url.clone(),
    };
    let app = TestApp::spawn_on(db, |c| c.database_url = url).await;
    let t = app.tenant("acme").await;
    app.slack_source(t.id, "T001").await;
    let (status, _) = app
        .post_slack(
            "/webhooks/slack",
            &slack_event("EvUp", "T001"),
            now_s(),
            SLACK_SECRET,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    match &proxy {
        Some(proxy) => proxy.cut(),
        None => app.state.store.close().await,
    }
    for i in 0..3 {
        let (status, resp) = app
            .post_slack(
                "/webhooks/slack",
                &slack_event(&format!("EvDown{i}"), "T001"),
                now_s(),
                SLACK_SECRET,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "never 2xx without storing: {resp}"
        );
        assert_eq!(resp["error"]["code"], "unavailable");
    }
    let ready = app.http.get(app.url("/ready")).send().await.expect("send");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}
