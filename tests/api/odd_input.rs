//! Input schemathesis found answered 500 on PostgreSQL, whose text cannot hold NUL:
//! a filter or lookup by such a value finds nothing, a value to store is refused.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};

both_profiles!(nul_in_text_is_refused_or_matches_nothing);

async fn nul_in_text_is_refused_or_matches_nothing(p: Profile) {
    let app = TestApp::spawn(p).await;
    let tenant = app.tenant("acme").await;
    let agent = app.agent(tenant.id, "bot").await.agent;
    let key = app.operator_key("write", None).await;

    for filter in ["kind=a%00b", "source=%00"] {
        let page = app.get_json(&format!("/api/jobs?{filter}"), &key).await;
        assert_eq!(page, json!({"jobs": [], "next_cursor": null}), "{filter}");
    }
    let (status, body) = app
        .post_json("/api/jobs/replay", &key, json!({"kind": "a\u{0}b"}))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"replayed": 0})));

    let events = format!("/api/agents/{}/events", agent.id);
    let event = json!({"type": "wake_up", "data": {}, "idempotency_key": "a\u{0}b"});
    let (status, body) = app.post_json(&events, &key, event).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("idempotency_key")),
        "{body}"
    );
    // A trace id is only carried into logs: one that cannot be is dropped.
    let event = json!({"type": "wake_up", "data": {}, "trace_id": "a\u{0}b"});
    let (status, body) = app.post_json(&events, &key, event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let tenant_events = format!("/api/tenants/{}/events", tenant.id);
    let event = json!({"type": "wake_up", "data": {}, "trace_id": "\u{0}"});
    let (status, body) = app.post_json(&tenant_events, &key, event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // No such client, and no such source: what any unknown one gets.
    let resp = app
        .http
        .post(app.url("/auth/token"))
        .json(&json!({
            "grant_type": "client_credentials",
            "client_id": "nxc_\u{0}",
            "client_secret": "x",
        }))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    let resp = app
        .http
        .post(app.url("/webhooks/clickup"))
        .json(&json!({"webhook_id": "w\u{0}", "event": "taskCreated"}))
        .send()
        .await
        .expect("send");
    let unknown = app
        .http
        .post(app.url("/webhooks/clickup"))
        .json(&json!({"webhook_id": "w", "event": "taskCreated"}))
        .send()
        .await
        .expect("send");
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert_eq!(resp.status(), unknown.status());
}
