//! Health, readiness, metrics and the error envelope.

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};

both_profiles!(
    health_and_ready,
    ready_is_503_when_the_database_is_gone,
    metrics_count_tokens_and_failures,
    errors_use_the_envelope,
    migrations_are_idempotent,
);

async fn health_and_ready(p: Profile) {
    let app = TestApp::spawn(p).await;
    let health = app.http.get(app.url("/health")).send().await.expect("send");
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(health.json::<Value>().await.expect("json")["status"], "ok");

    let ready = app.http.get(app.url("/ready")).send().await.expect("send");
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<Value>().await.expect("json")["status"],
        "ready"
    );
}

async fn ready_is_503_when_the_database_is_gone(p: Profile) {
    let app = TestApp::spawn(p).await;
    app.state.store.close().await;
    let ready = app.http.get(app.url("/ready")).send().await.expect("send");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_ready");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("database")
    );
    // Liveness is not readiness: the process is still alive.
    let health = app.http.get(app.url("/health")).send().await.expect("send");
    assert_eq!(health.status(), StatusCode::OK);
}

async fn metrics_count_tokens_and_failures(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let before = scrape(&app).await;
    let issued_before = counter(&before, "nexus_tokens_issued_total");
    let resp = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let after = scrape(&app).await;
    // Other tests in this process may issue tokens too: ours is at least counted.
    assert!(counter(&after, "nexus_tokens_issued_total") >= issued_before + 1.0);
}

pub async fn scrape(app: &TestApp) -> String {
    let resp = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    resp.text().await.expect("text")
}

fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn errors_use_the_envelope(p: Profile) {
    let app = TestApp::spawn(p).await;
    let missing = app
        .http
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].is_string());

    let wrong_method = app
        .http
        .delete(app.url("/health"))
        .send()
        .await
        .expect("send");
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = wrong_method.json().await.expect("json");
    assert_eq!(body["error"]["code"], "method_not_allowed");

    let huge = app
        .http
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 64 * 1024])
        .send()
        .await
        .expect("send");
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn migrations_are_idempotent(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    // The node migrated at start; migrating again (a second node, `nexus migrate`) is a no-op.
    app.state.store.migrate().await.expect("second migrate");
    let again = nexus::store::Store::connect(&app.db.url)
        .await
        .expect("connect");
    again.migrate().await.expect("third migrate");
    assert_eq!(again.pending_migrations().await.expect("pending"), 0);
    assert_eq!(again.list_tenants().await.expect("list"), vec![t]);
}
