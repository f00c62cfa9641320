//! Webhook sources over the operator API: add, page through, show (never with their
//! secrets), remove; and rotation with a grace period: real signed Slack and ClickUp
//! requests are accepted with both secrets during it, only with the new one after.

use std::sync::Arc;
use std::time::Duration;

use nexus::app::Extras;
use nexus::time::{Clock, ManualClock};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp, TestDb};
use crate::operator_api::{call, walk};
use crate::webhook_support::{CLICKUP_SECRET, SLACK_SECRET, hmac_hex, slack_event};

both_profiles!(
    sources_are_added_paged_shown_and_removed_without_secrets,
    a_rotated_secret_and_the_old_one_both_sign_during_the_grace_only,
);

async fn sources_are_added_paged_shown_and_removed_without_secrets(p: Profile) {
    let app = TestApp::spawn(p).await;
    let admin = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await;
    let path = format!("/api/tenants/{}/sources", t.id);
    let slack = json!({"kind": "slack", "external_id": "T1", "secret": "slack-secret-0001", "api_token": "xoxb-token-0001"});
    let (status, made) = call(&app, Method::POST, &path, &admin, Some(slack)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().expect("id").to_owned();
    assert_eq!(made["url_path"], format!("/webhooks/slack/{id}"));
    let clickup = json!({"kind": "clickup", "external_id": "wh-1", "secret": "clickup-secret-01"});
    let (status, _) = call(&app, Method::POST, &path, &admin, Some(clickup)).await;
    assert_eq!(status, StatusCode::CREATED);
    let bad = json!({"kind": "github", "external_id": "x", "secret": "whatever-000"});
    let (status, refused) = call(&app, Method::POST, &path, &admin, Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["error"]["details"]["fields"]["kind"].is_string(),
        "{refused}"
    );

    let listed = walk(&app, &path, "sources", &admin, 1).await;
    assert_eq!(listed.len(), 2);
    let (status, shown) = call(
        &app,
        Method::GET,
        &format!("/api/sources/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (status, shown["external_id"].as_str()),
        (StatusCode::OK, Some("T1"))
    );
    let text = format!("{listed:?}{shown}");
    for secret in ["slack-secret-0001", "xoxb-token-0001", "clickup-secret-01"] {
        assert!(!text.contains(secret), "a source is shown with its secret");
    }
    let other = app.tenant("other").await;
    let bound = app.operator_key("admin", Some(other.id)).await;
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = call(&app, method, &format!("/api/sources/{id}"), &bound, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/sources/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/sources/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_rotated_secret_and_the_old_one_both_sign_during_the_grace_only(p: Profile) {
    let clock = ManualClock::starting_now();
    let extras = Extras {
        clock: Arc::new(clock.clone()),
        ..Extras::default()
    };
    let app = TestApp::spawn_full(TestDb::new(p).await, |_| {}, extras).await;
    let admin = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await;
    let slack = app.slack_source(t.id, "T1").await;
    let clickup = app.clickup_source(t.id, "wh-1").await;
    let (new_slack, new_clickup) = ("slack-rotated-secret-2", "clickup-rotated-secret-2");
    for (source, secret) in [(slack.id, new_slack), (clickup.id, new_clickup)] {
        let body = json!({"secret": secret, "grace": "1h"});
        let path = format!("/api/sources/{source}/rotate");
        let (status, rotated) = call(&app, Method::POST, &path, &admin, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        assert!(rotated["previous_secret_until"].is_string(), "{rotated}");
        assert!(!rotated.to_string().contains(secret));
    }
    let mut n = 0;
    let mut deliver = |secret: &'static str, clickup_sender: bool| {
        n += 1;
        let app = &app;
        let clock = clock.clone();
        async move {
            if clickup_sender {
                let body = json!({"event": "taskCreated", "task_id": "86a1", "webhook_id": "wh-1",
                                  "history_items": [{"id": format!("h{n}"), "type": 1}]})
                .to_string();
                let sig = hmac_hex(secret, body.as_bytes());
                app.post_signed("/webhooks/clickup", "x-signature", sig, &body)
                    .await
                    .0
            } else {
                let ts = clock.now_ms() / 1000;
                let body = slack_event(&format!("Ev{n}"), "T1");
                app.post_slack("/webhooks/slack", &body, ts, secret).await.0
            }
        }
    };
    for clickup_sender in [false, true] {
        let (old, new) = match clickup_sender {
            false => (SLACK_SECRET, new_slack),
            true => (CLICKUP_SECRET, new_clickup),
        };
        assert_eq!(
            deliver(old, clickup_sender).await,
            StatusCode::OK,
            "old secret, in the grace"
        );
        assert_eq!(
            deliver(new, clickup_sender).await,
            StatusCode::OK,
            "new secret"
        );
    }
    clock.advance_ms(Duration::from_secs(3601).as_millis() as i64);
    for clickup_sender in [false, true] {
        let (old, new) = match clickup_sender {
            false => (SLACK_SECRET, new_slack),
            true => (CLICKUP_SECRET, new_clickup),
        };
        assert_eq!(
            deliver(old, clickup_sender).await,
            StatusCode::UNAUTHORIZED,
            "old secret, after the grace"
        );
        assert_eq!(
            deliver(new, clickup_sender).await,
            StatusCode::OK,
            "new secret, after the grace"
        );
    }
    let audit = app
        .get_json("/api/audit?action=source.rotate", &admin)
        .await;
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(2),
        "{audit}"
    );
    assert!(!audit.to_string().contains(new_slack));
}
