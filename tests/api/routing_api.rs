//! The operator routing API: emit, fan out, online, inbox — and tenant isolation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::agent_client::event;
use crate::both_profiles;
use crate::helpers::{Profile, TestApp};

both_profiles!(
    emit_to_agent_is_durable_and_idempotent,
    emit_to_tenant_reaches_every_active_agent,
    inbox_pages_with_a_cursor,
    every_route_enforces_tenant_and_scope,
    bad_event_bodies_are_400,
);

async fn get(app: &TestApp, key: &str, path: &str) -> (StatusCode, Value) {
    let resp = app
        .http
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("send");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn emit_to_agent_is_durable_and_idempotent(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let key = app.operator_key("write", None).await;
    let path = format!("/api/agents/{}/events", a.agent.id);
    let body =
        json!({"type": "task_assigned", "data": {"task": {"id": "T1"}}, "idempotency_key": "k1"});
    let (status, first) = app.post_json(&path, &key, body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(first["seq"], 1);
    let (status, again) = app.post_json(&path, &key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        again, first,
        "a repeated idempotency key returns the first event"
    );
    let (_, other) = app
        .post_json(&path, &key, json!({"type": "wake_up", "data": {}}))
        .await;
    assert_eq!(other["seq"], 2);

    // The agent was offline; it gets both on connect, with the ids the API returned.
    let mut agent = app.online(&a, t.id).await;
    let (kind, seq, id, data) = event(&agent.recv().await);
    assert_eq!(
        (kind, seq, id.as_str()),
        ("task_assigned", 1, first["event_id"].as_str().expect("id"))
    );
    assert_eq!(data, json!({"task": {"id": "T1"}}));
    assert_eq!(event(&agent.recv().await).0, "wake_up");
}

async fn emit_to_tenant_reaches_every_active_agent(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let other_tenant = app.tenant("other").await;
    let a = app.agent(t.id, "a").await;
    let b = app.agent(t.id, "b").await;
    let off = app.agent(t.id, "off").await;
    let outsider = app.agent(other_tenant.id, "x").await;
    nexus::admin::set_agent_status(
        &app.state.store,
        &nexus::admin::Actor::Cli,
        off.agent.id,
        nexus::store::AgentStatus::Disabled,
    )
    .await
    .expect("disable");
    let mut online_a = app.online(&a, t.id).await;

    let key = app.operator_key("write", Some(t.id)).await;
    let (status, body) = app
        .post_json(
            &format!("/api/tenants/{}/events", t.id),
            &key,
            json!({"type": "context_update", "data": {"note": "all hands"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["agents"], 2);
    let (kind, _, id, data) = event(&online_a.recv().await);
    assert_eq!(
        (kind, id.as_str()),
        ("context_update", body["event_id"].as_str().expect("id"))
    );
    assert_eq!(data["note"], "all hands");
    // b was offline: the event waits in its stream. The disabled agent stays subscribed
    // (it reads the event once enabled again); the other tenant got nothing.
    let reader = app.operator_key("read", None).await;
    assert_eq!(app.cursor(b.agent.id, &reader).await.last_seq, 1);
    assert_eq!(app.cursor(off.agent.id, &reader).await.last_seq, 1);
    assert_eq!(app.cursor(outsider.agent.id, &reader).await.last_seq, 0);
}

async fn inbox_pages_with_a_cursor(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    for i in 1..=5 {
        crate::gateway::emit(&app, a.agent.id, i).await;
    }
    let key = app.operator_key("read", Some(t.id)).await;
    let (status, page1) = get(
        &app,
        &key,
        &format!("/api/agents/{}/inbox?limit=2", a.agent.id),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seqs = |v: &Value| {
        v["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["seq"].as_u64().expect("seq"))
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&page1), vec![1, 2]);
    assert_eq!(page1["events"][0]["data"], json!({"i": 1}));
    assert_eq!(page1["events"][0]["type"], "context_update");
    let next = page1["next_after_seq"].as_u64().expect("cursor");
    let (_, page2) = get(
        &app,
        &key,
        &format!("/api/agents/{}/inbox?limit=2&after_seq={next}", a.agent.id),
    )
    .await;
    assert_eq!(seqs(&page2), vec![3, 4]);
    let (_, page3) = get(
        &app,
        &key,
        &format!("/api/agents/{}/inbox?limit=2&after_seq=4", a.agent.id),
    )
    .await;
    assert_eq!(seqs(&page3), vec![5]);
    assert!(page3["next_after_seq"].is_null());
    assert_eq!(page3["last_seq"], 5);
}

async fn every_route_enforces_tenant_and_scope(p: Profile) {
    let app = TestApp::spawn(p).await;
    let mine = app.tenant("mine").await;
    let theirs = app.tenant("theirs").await;
    let their_agent = app.agent(theirs.id, "x").await;
    let my_agent = app.agent(mine.id, "y").await;
    let bound = app.operator_key("read,write", Some(mine.id)).await;
    let read_only = app.operator_key("read", None).await;
    let ev = json!({"type": "wake_up", "data": {}});

    let outside = [
        (
            "POST",
            format!("/api/agents/{}/events", their_agent.agent.id),
        ),
        ("GET", format!("/api/agents/{}/inbox", their_agent.agent.id)),
        ("POST", format!("/api/tenants/{}/events", theirs.id)),
        ("GET", format!("/api/tenants/{}/agents/online", theirs.id)),
    ];
    for (method, path) in &outside {
        let (status, body) = match *method {
            "POST" => app.post_json(path, &bound, ev.clone()).await,
            _ => get(&app, &bound, path).await,
        };
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    // Nothing was written for the other tenant.
    assert_eq!(
        app.cursor(their_agent.agent.id, &read_only).await.last_seq,
        0
    );

    // A read key cannot write; no key or a bad key is 401.
    let (status, body) = app
        .post_json(
            &format!("/api/agents/{}/events", my_agent.agent.id),
            &read_only,
            ev.clone(),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let resp = app
        .http
        .get(app.url(&format!("/api/tenants/{}/agents/online", mine.id)))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = get(
        &app,
        "nxk_not_a_key",
        &format!("/api/tenants/{}/agents/online", mine.id),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Inside its tenant the bound key works.
    let (status, _) = app
        .post_json(
            &format!("/api/agents/{}/events", my_agent.agent.id),
            &bound,
            ev,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

async fn bad_event_bodies_are_400(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let key = app.operator_key("write", None).await;
    let path = format!("/api/agents/{}/events", a.agent.id);
    for body in [
        json!({"type": "tool_result", "data": {}}),
        json!({"type": "nonsense", "data": {}}),
        json!({"type": "wake_up", "data": [1, 2]}),
        json!({"data": {}}),
    ] {
        let (status, resp) = app.post_json(&path, &key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(resp["error"]["code"].is_string());
    }
    let (status, resp) = app
        .post_json(
            "/api/agents/not-a-uuid/events",
            &key,
            json!({"type": "wake_up", "data": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(resp["error"]["code"], "invalid_request");
    let (status, _) = app
        .post_json(
            &format!("/api/agents/{}/events", uuid::Uuid::now_v7()),
            &key,
            json!({"type": "wake_up", "data": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
