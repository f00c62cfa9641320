//! Webhooks stay inside their tenant: a tenant's own secret cannot store deliveries for
//! another tenant's team or webhook, nor make another tenant's deliveries "duplicate";
//! a captured ingest request cannot be replayed later or under a new idempotency key.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};
use crate::webhook_support::{INGEST_SECRET, SLACK_SECRET, hmac_hex, now_s, slack_event};

both_profiles!(
    a_payload_for_another_tenants_source_is_refused,
    one_delivery_id_in_two_tenants_makes_two_jobs,
    a_captured_ingest_request_cannot_be_replayed,
);

async fn a_payload_for_another_tenants_source_is_refused(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (victim, attacker) = (app.tenant("victim").await, app.tenant("attacker").await);
    app.clickup_source(victim.id, "wh-victim").await;
    let own = app.clickup_source(attacker.id, "wh-attacker").await;
    // Signed with the attacker's own secret, sent to the attacker's own URL, but naming
    // the victim's webhook and a history item the victim will be sent.
    let forged = json!({"event": "taskCreated", "task_id": "86a1", "webhook_id": "wh-victim",
                        "history_items": [{"id": "2800763136717140857"}]})
    .to_string();
    let (status, resp) = app.post_clickup(&own.url_path, &forged).await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_source")),
        "{resp}"
    );
    assert_eq!(
        app.job_count().await,
        0,
        "nothing stored for the forged delivery"
    );
    // The victim's real delivery is accepted, not taken for a duplicate.
    let (status, real) = app.post_clickup("/webhooks/clickup", &forged).await;
    assert_eq!(
        (status, real["status"].as_str()),
        (StatusCode::OK, Some("accepted"))
    );

    // The same for Slack: the attacker's URL with the victim's team.
    app.slack_source(victim.id, "TVICTIM").await;
    let own_slack = app.slack_source(attacker.id, "TATTACK").await;
    let (status, resp) = app
        .post_slack(
            &own_slack.url_path,
            &slack_event("Ev9", "TVICTIM"),
            now_s(),
            SLACK_SECRET,
        )
        .await;
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unknown_source"))
    );
    assert_eq!(app.job_count().await, 1);
}

async fn one_delivery_id_in_two_tenants_makes_two_jobs(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    app.slack_source(a.id, "TA").await;
    app.slack_source(b.id, "TB").await;
    let mut jobs = Vec::new();
    for team in ["TA", "TB"] {
        let (status, resp) = app
            .post_slack(
                "/webhooks/slack",
                &slack_event("EvSame", team),
                now_s(),
                SLACK_SECRET,
            )
            .await;
        assert_eq!(
            (status, resp["status"].as_str()),
            (StatusCode::OK, Some("accepted")),
            "{resp}"
        );
        jobs.push(resp["job_id"].clone());
    }
    assert_ne!(jobs[0], jobs[1], "each tenant has its own job");
    assert_eq!(app.job_count().await, 2);
}

async fn a_captured_ingest_request_cannot_be_replayed(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "downloader").await;
    let source = app.ingest_source(t.id, Some(a.agent.id), None).await;
    let body = json!({"transfer": {"id": 7}}).to_string();
    let ts = now_s();
    let (status, resp) = app
        .post_ingest(&source.url_path, Some("transfer-7"), ts, &body)
        .await;
    assert_eq!(
        (status, resp["status"].as_str()),
        (StatusCode::OK, Some("accepted"))
    );

    // The same bytes again: a duplicate, not a second delivery.
    let (status, resp) = app
        .post_ingest(&source.url_path, Some("transfer-7"), ts, &body)
        .await;
    assert_eq!(
        (status, resp["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    // The captured signature under a new idempotency key: refused, nothing stored.
    let signed = format!("v1:{ts}:transfer-7:{body}");
    let captured = format!("v1={}", hmac_hex(INGEST_SECRET, signed.as_bytes()));
    let replay = |key: &'static str, ts: i64, sig: String| {
        app.http
            .post(app.url(&source.url_path))
            .header("x-nexus-timestamp", ts.to_string())
            .header("x-nexus-signature", sig)
            .header("idempotency-key", key)
            .body(body.clone())
            .send()
    };
    let resp = replay("transfer-7-again", ts, captured.clone())
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Signed correctly but six minutes old: refused.
    let (status, resp) = app
        .post_ingest(&source.url_path, Some("transfer-8"), ts - 360, &body)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("5 minutes"),
        "{resp}"
    );

    // The old scheme (body only, no timestamp) is refused with what to send instead.
    let old = format!("sha256={}", hmac_hex(INGEST_SECRET, body.as_bytes()));
    let (status, resp) = app
        .post_signed(&source.url_path, "x-nexus-signature", old, &body)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("X-Nexus-Timestamp"),
        "{resp}"
    );
    assert_eq!(
        app.job_count().await,
        1,
        "only the first delivery was stored"
    );
}
