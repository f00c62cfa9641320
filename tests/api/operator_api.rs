//! The operator REST API for tenants and agents: create, page through, change, isolate
//! tenant-bound keys; suspend (sockets closed with 4011, tokens refused, webhooks kept
//! as dead jobs) and resume; delete a tenant with its data.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};
use crate::webhook_support::{SLACK_SECRET, now_s, slack_event};

both_profiles!(
    tenants_are_created_paged_changed_and_shown,
    bad_input_is_a_400_naming_the_field,
    a_tenant_bound_key_sees_and_changes_only_its_tenant,
    suspending_closes_sockets_refuses_tokens_and_keeps_webhooks_dead,
    deleting_a_tenant_removes_its_agents_and_jobs,
);

/// A node whose API waits long enough for argon2 in a debug build: creating agents and
/// rotating secrets hash on the request (the storage bound would answer 503 first).
pub async fn spawn_patient(p: Profile) -> TestApp {
    TestApp::spawn_with(p, |c| c.serve.db.request_timeout = Duration::from_secs(30)).await
}

/// `method path` with the operator `key` and an optional JSON body: status and answer.
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Every item of a list, walking its pages of `limit`; panics on a repeated item (by
/// `id`, or whole for rows without one) and unless the last page says `next_cursor: null`.
pub async fn walk(app: &TestApp, path: &str, plural: &str, key: &str, limit: u32) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (mut all, mut seen, mut cursor) = (Vec::new(), HashSet::new(), None::<String>);
    loop {
        let mut url = format!("{path}{sep}limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = call(app, Method::GET, &url, key, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page[plural].as_array().unwrap_or_else(|| panic!("{page}"));
        assert!(items.len() <= limit as usize);
        for item in items {
            let id = item.get("id").unwrap_or(item).to_string();
            assert!(seen.insert(id.clone()), "{id} on two pages");
            all.push(item.clone());
        }
        match page.get("next_cursor") {
            Some(Value::String(next)) => cursor = Some(next.to_owned()),
            Some(Value::Null) => return all,
            _ => panic!("no next_cursor: {page}"),
        }
    }
}

async fn tenants_are_created_paged_changed_and_shown(p: Profile) {
    let app = TestApp::spawn(p).await;
    let admin = app.operator_key("admin", None).await;
    let mut ids = HashSet::new();
    for i in 0..5 {
        let body = json!({"name": format!("t{i}")});
        let (status, t) = call(&app, Method::POST, "/api/tenants", &admin, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        assert_eq!(t["status"], "active");
        assert_eq!(t["tier"], "standard");
        for field in ["id", "name", "tool_scope", "allow_broadcasts", "created_at"] {
            assert!(t.get(field).is_some(), "{field} missing: {t}");
        }
        ids.insert(t["id"].as_str().expect("id").to_owned());
    }
    let listed = walk(&app, "/api/tenants", "tenants", &admin, 2).await;
    let listed: HashSet<String> = listed
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(listed, ids, "the pages hold every tenant once");

    let id = ids.iter().next().expect("one");
    let path = format!("/api/tenants/{id}");
    let patch = json!({"name": "renamed", "tier": "enterprise"});
    let (status, _) = call(&app, Method::PATCH, &path, &admin, Some(patch)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, shown) = call(&app, Method::GET, &path, &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (shown["name"].as_str(), shown["tier"].as_str()),
        (Some("renamed"), Some("enterprise"))
    );
    let (status, taken) = call(
        &app,
        Method::PATCH,
        &format!("/api/tenants/{}", ids.iter().nth(1).expect("two")),
        &admin,
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");
}

async fn bad_input_is_a_400_naming_the_field(p: Profile) {
    let app = TestApp::spawn(p).await;
    let admin = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await;
    let cases = [
        (
            Method::GET,
            "/api/tenants?limit=0".to_owned(),
            None,
            "limit",
        ),
        (
            Method::GET,
            "/api/tenants?limit=501".to_owned(),
            None,
            "limit",
        ),
        (
            Method::GET,
            "/api/tenants?cursor=nope".to_owned(),
            None,
            "cursor",
        ),
        (
            Method::POST,
            "/api/tenants".to_owned(),
            Some(json!({"name": " padded"})),
            "name",
        ),
        (
            Method::PATCH,
            format!("/api/tenants/{}", t.id),
            Some(json!({"tier": "Gold!"})),
            "tier",
        ),
        (
            Method::GET,
            format!("/api/tenants/{}/agents?status=sleeping", t.id),
            None,
            "status",
        ),
        (
            Method::POST,
            format!("/api/tenants/{}/agents", t.id),
            Some(json!({"count": 0, "name_prefix": "w"})),
            "count",
        ),
        (
            Method::POST,
            format!("/api/tenants/{}/agents", t.id),
            Some(json!({"name": "a", "slack_user": "not a user"})),
            "slack_user",
        ),
        (
            Method::GET,
            "/api/audit?since=yesterday".to_owned(),
            None,
            "since",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = call(&app, method, &path, &admin, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid", "{path}: {answer}");
        assert!(
            answer["error"]["details"]["fields"][field].is_string(),
            "{path} should name {field}: {answer}"
        );
    }
}

async fn a_tenant_bound_key_sees_and_changes_only_its_tenant(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (own, other) = (app.tenant("own").await, app.tenant("other").await);
    let theirs = app.agent(other.id, "theirs").await;
    let key = app.operator_key("admin", Some(own.id)).await;
    let listed = walk(&app, "/api/tenants", "tenants", &key, 50).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], own.id.to_string());
    let not_found = [
        (Method::GET, format!("/api/tenants/{}", other.id)),
        (Method::PATCH, format!("/api/tenants/{}", other.id)),
        (Method::POST, format!("/api/tenants/{}/suspend", other.id)),
        (Method::GET, format!("/api/tenants/{}/agents", other.id)),
        (Method::POST, format!("/api/tenants/{}/agents", other.id)),
        (Method::GET, format!("/api/agents/{}", theirs.agent.id)),
        (
            Method::POST,
            format!("/api/agents/{}/disable", theirs.agent.id),
        ),
        (
            Method::POST,
            format!("/api/agents/{}/rotate-secret", theirs.agent.id),
        ),
        (Method::GET, format!("/api/audit?tenant={}", other.id)),
    ];
    for (method, path) in not_found {
        let body = Some(json!({"name": "x"}));
        let (status, answer) = call(&app, method, &path, &key, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/tenants",
        &key,
        Some(json!({"name": "new"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/tenants/{}", own.id),
        &key,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let reader = app.operator_key("read", None).await;
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/tenants",
        &reader,
        Some(json!({"name": "new"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "creating a tenant needs admin"
    );
}

async fn suspending_closes_sockets_refuses_tokens_and_keeps_webhooks_dead(p: Profile) {
    let app = TestApp::spawn_with(p, |c| {
        c.serve.reconcile_interval = Duration::from_secs(3600)
    })
    .await;
    let admin = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let source = app.slack_source(t.id, "T1").await;
    let mut ws = app.online(&a, t.id).await;

    let (status, suspended) = call(
        &app,
        Method::POST,
        &format!("/api/tenants/{}/suspend", t.id),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (status, suspended["status"].as_str()),
        (StatusCode::OK, Some("suspended"))
    );
    assert_eq!(ws.closed().await, 4011);
    let refused = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("suspended")),
        "{body}"
    );
    let token = app.token_for(a.agent.id, t.id);
    let refused = app
        .connect(&token, "")
        .await
        .expect_err("a suspended tenant's socket is refused");
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (403, Some("tenant_suspended"))
    );

    // The provider hears 200; the operator sees why nothing happened.
    let (status, answer) = app
        .post_slack(
            &source.url_path,
            &slack_event("Ev1", "T1"),
            now_s(),
            SLACK_SECRET,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["status"].as_str(), answer["reason"].as_str()),
        (Some("dropped"), Some("tenant_suspended"))
    );
    let dead = app.get_json("/api/jobs?status=dead", &admin).await;
    assert_eq!(dead["jobs"][0]["reason_code"], "tenant_suspended", "{dead}");
    assert_eq!(dead["jobs"][0]["id"], answer["job_id"]);

    let (status, resumed) = call(
        &app,
        Method::POST,
        &format!("/api/tenants/{}/resume", t.id),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (status, resumed["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );
    let token = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    assert_eq!(token.status(), StatusCode::OK);
    app.online(&a, t.id).await;
}

async fn deleting_a_tenant_removes_its_agents_and_jobs(p: Profile) {
    let app = TestApp::spawn(p).await;
    let admin = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await;
    let keep = app.tenant("keep").await;
    let kept = app.agent(keep.id, "stays").await;
    let a = app.agent(t.id, "bot").await;
    let source = app.slack_source(t.id, "T1").await;
    let (status, answer) = app
        .post_slack(
            &source.url_path,
            &slack_event("Ev1", "T1"),
            now_s(),
            SLACK_SECRET,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let job = answer["job_id"].as_str().expect("job id").to_owned();
    let mut ws = app.online(&a, t.id).await;

    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/tenants/{}", t.id),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ws.closed().await, 4003);
    let refused = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    for path in [
        format!("/api/jobs/{job}"),
        format!("/api/tenants/{}", t.id),
        format!("/api/agents/{}", a.agent.id),
    ] {
        let (status, _) = call(&app, Method::GET, &path, &admin, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = call(
        &app,
        Method::DELETE,
        &format!("/api/tenants/{}", t.id),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let ok = app
        .token_response(&kept.agent.client_id, &kept.client_secret)
        .await;
    assert_eq!(
        ok.status(),
        StatusCode::OK,
        "other tenants keep their agents"
    );
}
