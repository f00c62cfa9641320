//! Disabling an agent takes effect on its live sessions: closed with 4003 (also when
//! another process, the CLI, disabled it), no refresh, no tool calls, no token.
//! Revoking its tokens refuses every token issued before, live sessions included.

use std::time::Duration;

use nexus::store::AgentStatus;
use reqwest::StatusCode;
use serde_json::json;

use nexus_proto::ServerMsg;

use crate::agent_client::event;
use crate::both_profiles;
use crate::cli::{json_lines, nexus, one};
use crate::helpers::{Profile, TestApp, TestDb};

both_profiles!(
    a_disabled_agents_session_is_closed_with_4003,
    a_disabled_agent_cannot_refresh_or_call_tools,
    operator_keys_are_listed_and_revoked_at_once,
    the_cli_lists_and_revokes_operator_keys,
    revoked_tokens_are_refused_and_their_sessions_closed,
    tokens_revoked_through_the_api_close_the_session_at_once,
);

async fn disable(app: &TestApp, agent: nexus_proto::AgentId) {
    // What `nexus agent disable` does: straight to the database, no cache told.
    nexus::admin::set_agent_status(
        &app.state.store,
        &nexus::admin::Actor::Cli,
        agent,
        AgentStatus::Disabled,
    )
    .await
    .expect("disable");
}

async fn a_disabled_agents_session_is_closed_with_4003(p: Profile) {
    let app = TestApp::spawn_with(p, |c| {
        c.serve.reconcile_interval = Duration::from_millis(200);
    })
    .await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app.online(&a, t.id).await;
    disable(&app, a.agent.id).await;
    assert_eq!(agent.closed().await, 4003);
    let refused = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
}

async fn a_disabled_agent_cannot_refresh_or_call_tools(p: Profile) {
    // No reconcile during the test, no cache: what the session itself checks.
    let app = TestApp::spawn_with(p, |c| {
        c.serve.reconcile_interval = Duration::from_secs(3600);
        c.serve.cache_ttl = Duration::ZERO;
    })
    .await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app.online(&a, t.id).await;
    disable(&app, a.agent.id).await;
    let data = json!({"request_id": "r1", "tool": "slack.post_message",
                      "args": {"channel": "C1", "text": "hi"}});
    agent
        .send(json!({"type": "tool_request", "data": data}))
        .await;
    let (kind, _, _, result) = event(&agent.recv().await);
    assert_eq!(kind, "tool_result");
    assert_eq!(result["error"]["code"], "agent_disabled", "{result}");
    let token = app.token_for(a.agent.id, t.id);
    agent
        .send(json!({"type": "refresh", "data": {"token": token}}))
        .await;
    assert_eq!(agent.closed().await, 4003);
}

async fn operator_keys_are_listed_and_revoked_at_once(p: Profile) {
    // A long cache: a key revoked through the API must stop working regardless.
    let app = TestApp::spawn_with(p, |c| c.serve.cache_ttl = Duration::from_secs(3600)).await;
    let admin = app.operator_key("admin", None).await;
    let (status, created) = app
        .post_json(
            "/api/operator-keys",
            &admin,
            json!({"name": "ci", "scopes": "read"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (id, key) = (
        created["id"].as_str().expect("id").to_owned(),
        created["key"].as_str().expect("key").to_owned(),
    );
    let stats = |key: String| {
        let http = app.http.clone();
        let url = app.url("/api/queue/stats");
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("send")
                .status()
        }
    };
    assert_eq!(
        stats(key.clone()).await,
        StatusCode::OK,
        "the key is cached now"
    );
    let listed = app.get_json("/api/operator-keys", &admin).await;
    let listed = listed["keys"].as_array().expect("list");
    assert!(listed.iter().any(|k| k["id"] == id.as_str()));
    assert!(
        listed.iter().all(|k| k.get("key").is_none()),
        "keys are never shown again"
    );

    // A tenant's admin cannot revoke a key outside its tenant.
    let t = app.tenant("acme").await;
    let tenant_admin = app.operator_key("admin", Some(t.id)).await;
    let revoke = |key: String| {
        let http = app.http.clone();
        let url = app.url(&format!("/api/operator-keys/{id}"));
        async move {
            http.delete(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("send")
                .status()
        }
    };
    assert_eq!(revoke(tenant_admin).await, StatusCode::NOT_FOUND);
    assert_eq!(revoke(admin.clone()).await, StatusCode::NO_CONTENT);
    assert_eq!(
        stats(key).await,
        StatusCode::UNAUTHORIZED,
        "refused at once"
    );
    assert_eq!(
        revoke(admin).await,
        StatusCode::NOT_FOUND,
        "already revoked"
    );
}

async fn the_cli_lists_and_revokes_operator_keys(p: Profile) {
    let db = TestDb::new(p).await;
    let created = one(&nexus(
        &db,
        &["operator-key", "create", "--name", "ci", "--scopes", "read"],
    ));
    let id = created["id"].as_str().expect("id");
    let listed = json_lines(&nexus(&db, &["operator-key", "list"]));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id);
    assert!(
        listed[0].get("key").is_none(),
        "the key is never shown again"
    );
    let revoked = one(&nexus(&db, &["operator-key", "revoke", id]));
    assert_eq!(revoked["id"], id);
    assert!(json_lines(&nexus(&db, &["operator-key", "list"])).is_empty());
    let again = nexus(&db, &["operator-key", "revoke", id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not found"));
}

async fn revoked_tokens_are_refused_and_their_sessions_closed(p: Profile) {
    let app = TestApp::spawn_with(p, |c| {
        c.serve.reconcile_interval = Duration::from_millis(200);
    })
    .await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let other = app.agent(t.id, "other").await;
    let mut agent = app.online(&a, t.id).await;
    let mut bystander = app.online(&other, t.id).await;
    let stolen = app.token_for(a.agent.id, t.id);

    // Another process (the CLI) revokes: the node learns it from its reconcile pass.
    let out = one(&nexus(
        &app.db,
        &["agent", "revoke-tokens", &a.agent.id.to_string()],
    ));
    assert_eq!(out["agent_id"], a.agent.id.to_string());
    assert_eq!(
        agent.closed().await,
        4001,
        "the session's token was revoked"
    );
    let Err(refused) = app.connect(&stolen, "").await else {
        panic!("a revoked token connected");
    };
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["error"]["code"], "token_revoked");

    // The agent's own secret still gets a token, and it works; the old one cannot refresh.
    let fresh = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let fresh: serde_json::Value = fresh.json().await.expect("json");
    let fresh = fresh["access_token"].as_str().expect("token");
    let Ok(mut agent) = app.connect(fresh, "").await else {
        panic!("a fresh token was refused");
    };
    agent.welcome().await;
    agent
        .send(json!({"type": "refresh", "data": {"token": stolen}}))
        .await;
    match agent.recv().await {
        ServerMsg::Error { data } => assert_eq!(data.code.as_str(), "invalid_token"),
        other => panic!("expected an error, got {other:?}"),
    }

    // Other agents' sessions are untouched: the bystander still gets its events.
    let key = app.operator_key("admin", None).await;
    let (status, body) = app
        .post_json(
            &format!("/api/agents/{}/events", other.agent.id),
            &key,
            json!({"type": "wake_up", "data": {"reason": "still here"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (kind, ..) = event(&bystander.recv().await);
    assert_eq!(kind, "wake_up");
}

async fn tokens_revoked_through_the_api_close_the_session_at_once(p: Profile) {
    // No reconcile during the test: the revoking node closes its own sessions.
    let app = TestApp::spawn_with(p, |c| {
        c.serve.reconcile_interval = Duration::from_secs(3600);
    })
    .await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app.online(&a, t.id).await;
    let path = format!("/api/agents/{}/revoke-tokens", a.agent.id);

    let elsewhere = app.tenant("globex").await;
    let foreign = app.operator_key("admin", Some(elsewhere.id)).await;
    let (status, body) = app.post_json(&path, &foreign, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let writer = app.operator_key("write", None).await;
    let (status, body) = app.post_json(&path, &writer, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let admin = app.operator_key("admin", Some(t.id)).await;
    let (status, body) = app.post_json(&path, &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent_id"], a.agent.id.to_string());
    assert_eq!(agent.closed().await, 4001);
}
