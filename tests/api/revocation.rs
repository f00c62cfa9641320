//! Disabling an agent takes effect on its live sessions: closed with 4003 (also when
//! another process, the CLI, disabled it), no refresh, no tool calls, no token.

use std::time::Duration;

use nexus::store::AgentStatus;
use serde_json::json;

use crate::agent_client::event;
use crate::both_profiles;
use crate::helpers::{Profile, TestApp};

both_profiles!(
    a_disabled_agents_session_is_closed_with_4003,
    a_disabled_agent_cannot_refresh_or_call_tools,
);

async fn disable(app: &TestApp, agent: nexus_proto::AgentId) {
    // What `nexus agent disable` does: straight to the database, no cache told.
    nexus::admin::set_agent_status(&app.state.store, agent, AgentStatus::Disabled)
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
