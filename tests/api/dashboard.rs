//! `/dashboard`'s assets and the endpoints only the dashboard needed: the tenant list
//! and a tenant's activity per day.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};

both_profiles!(
    activity_counts_events_once_and_webhooks_per_day,
    the_tenant_list_pages_and_shows_a_bound_key_its_own,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_assets_are_served_with_types_caching_and_a_strict_policy() {
    let app = TestApp::spawn(Profile::Sqlite).await;
    for (path, ctype) in [
        ("/dashboard", "text/html"),
        ("/dashboard/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
        ("/dashboard/favicon.svg", "image/svg+xml"),
    ] {
        let resp = app.http.get(app.url(path)).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers().clone();
        let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(header("content-type").starts_with(ctype), "{path}: {h:?}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        assert!(
            header("content-security-policy").starts_with("default-src 'self'"),
            "{path}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        // Revalidation: the same ETag answers 304 without a body.
        let etag = header("etag").to_owned();
        let again = app
            .http
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("send");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    let html = app
        .http
        .get(app.url("/dashboard"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from outside"
    );
    let missing = app
        .http
        .get(app.url("/dashboard/nope.js"))
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

async fn activity_counts_events_once_and_webhooks_per_day(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (t, other) = (app.tenant("acme").await, app.tenant("other").await);
    let (x, _y) = (app.agent(t.id, "x").await, app.agent(t.id, "y").await);
    let key = app.operator_key("read,write", None).await;
    let event = json!({"type": "wake_up", "data": {}});
    // One event to the whole tenant (two inbox rows) and one to x: two events.
    let tenant_path = format!("/api/tenants/{}/events", t.id);
    assert_eq!(
        app.post_json(&tenant_path, &key, event.clone()).await.0,
        StatusCode::ACCEPTED
    );
    let agent_path = format!("/api/agents/{}/events", x.agent.id);
    assert_eq!(
        app.post_json(&agent_path, &key, event).await.0,
        StatusCode::ACCEPTED
    );
    for (source, dedupe) in [("slack", "a"), ("clickup", "b"), ("tool", "c")] {
        let job = nexus::store::NewJob {
            tenant_id: t.id,
            source_id: None,
            source: source.into(),
            kind: "test.nothing".into(),
            dedupe_key: dedupe.into(),
            payload: "{}".into(),
            trace_id: None,
            max_attempts: 1,
            run_at: 0,
        };
        app.state.queue.enqueue(job).await.expect("enqueue");
    }

    let v = app
        .get_json(&format!("/api/tenants/{}/activity?days=7", t.id), &key)
        .await;
    let days = v["days"].as_array().expect("days");
    assert_eq!(days.len(), 7, "every day, oldest first: {v}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        days[6],
        json!({"day": today, "events": 2, "webhooks": 2}),
        "tool jobs are not webhooks"
    );
    assert!(
        days[..6]
            .iter()
            .all(|d| d["events"] == 0 && d["webhooks"] == 0),
        "{v}"
    );
    let two_weeks = app
        .get_json(&format!("/api/tenants/{}/activity", t.id), &key)
        .await;
    assert_eq!(two_weeks["days"].as_array().map(Vec::len), Some(14));

    let quiet = app
        .get_json(&format!("/api/tenants/{}/activity?days=1", other.id), &key)
        .await;
    assert_eq!(
        quiet["days"][0]["events"], 0,
        "another tenant's activity is its own"
    );
    let bad = app
        .get_json(&format!("/api/tenants/{}/activity?days=0", t.id), &key)
        .await;
    assert_eq!(bad["error"]["code"], "invalid_request", "{bad}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("days")
    );
    let bound = app.operator_key("read", Some(other.id)).await;
    let hidden = app
        .get_json(&format!("/api/tenants/{}/activity", t.id), &bound)
        .await;
    assert_eq!(hidden["error"]["code"], "not_found");
}

async fn the_tenant_list_pages_and_shows_a_bound_key_its_own(p: Profile) {
    let app = TestApp::spawn(p).await;
    let mut made = Vec::new();
    for n in 0..5 {
        made.push(app.tenant(&format!("t{n}")).await.id.to_string());
    }
    let key = app.operator_key("read", None).await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let v = app
            .get_json(&format!("/api/tenants?limit=2{cursor}"), &key)
            .await;
        for t in v["tenants"].as_array().expect("tenants") {
            seen.push(t["id"].as_str().expect("id").to_owned());
            assert!(t["name"].is_string() && t["tier"].is_string(), "{t}");
        }
        match v["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, made, "every tenant once, in order");
    let bound = app
        .operator_key("read", Some(made[3].parse().expect("id")))
        .await;
    let v = app.get_json("/api/tenants", &bound).await;
    assert_eq!(v["tenants"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["tenants"][0]["id"], made[3].as_str());
}
