//! `GET /agents`: refusal before upgrade, welcome, keepalive, supersede, limits, bad
//! input, token expiry, shutdown.

use std::time::Duration;

use nexus::bus::NewEvent;
use nexus::presence::PresenceChange;
use nexus_proto::{AgentId, EventType, ServerMsg, close};
use serde_json::{Value, json};

use crate::agent_client::event;
use crate::both_profiles;
use crate::helpers::{Profile, TestApp};

both_profiles!(
    bad_tokens_are_refused_before_upgrade,
    welcome_carries_the_session_facts,
    protocol_negotiation,
    silent_client_is_closed_after_ping_timeout,
    newer_session_supersedes_older,
    oversize_frame_closes_with_1009,
    malformed_frames_get_errors_and_the_socket_stays_open,
    persistent_abuse_closes_with_1008,
    inbound_rate_limit_drops_excess_frames_only,
    token_expiry_warns_then_closes_unless_refreshed,
    unknown_tool_gets_a_tool_result_error,
    presence_tracks_ready_status_and_disconnect,
);

pub async fn emit(app: &TestApp, agent: AgentId, i: u64) -> u64 {
    let ev = NewEvent::from_json(EventType::ContextUpdate, &json!({ "i": i }));
    let tenant = app
        .state
        .store
        .get_agent(agent)
        .await
        .expect("agent")
        .tenant_id;
    app.state
        .hub
        .emit_to_agent(tenant, agent, ev)
        .await
        .expect("emit")
        .seq
        .get()
}

fn forge(claims: Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("encode")
}

const TEST_SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";

async fn bad_tokens_are_refused_before_upgrade(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64| {
        json!({"sub": a.agent.id, "tenant_id": t.id, "client_id": a.agent.client_id,
               "iat": now - 100, "exp": exp, "jti": uuid::Uuid::now_v7()})
    };

    let missing = app.connect_with(None, "", &[]).await.expect_err("refused");
    assert_eq!(
        (missing.status, missing.body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    let garbage = app.connect("not-a-jwt", "").await.expect_err("refused");
    assert_eq!(
        (garbage.status, garbage.body["error"]["code"].as_str()),
        (401, Some("invalid_token"))
    );

    let expired = app
        .connect(&forge(claims(now - 10), TEST_SECRET), "")
        .await
        .expect_err("refused");
    assert_eq!(
        (expired.status, expired.body["error"]["code"].as_str()),
        (401, Some("token_expired"))
    );

    let wrong_key = app
        .connect(
            &forge(claims(now + 600), b"some-other-secret-xxxxxxxxxxxxxxx"),
            "",
        )
        .await;
    assert_eq!(wrong_key.expect_err("refused").status, 401);

    // ?token= works the same way (browsers cannot set headers).
    let valid = app.token_for(a.agent.id, t.id);
    let mut by_query = app
        .connect_with(None, &format!("token={valid}"), &[])
        .await
        .expect("connects");
    by_query.welcome().await;

    nexus::admin::set_agent_status(
        &app.state.store,
        &nexus::admin::Actor::Cli,
        a.agent.id,
        nexus::store::AgentStatus::Disabled,
    )
    .await
    .expect("disable");
    let disabled = app.connect(&valid, "").await.expect_err("refused");
    assert_eq!(
        (disabled.status, disabled.body["error"]["code"].as_str()),
        (401, Some("agent_disabled"))
    );
}

async fn welcome_carries_the_session_facts(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app
        .connect(&app.token_for(a.agent.id, t.id), "")
        .await
        .expect("connects");
    let w = agent.welcome().await;
    assert_eq!(w.agent_id, a.agent.id);
    assert_eq!(w.tenant_id, t.id);
    assert_eq!(w.protocol, "nexus.v1");
    assert_eq!(w.heartbeat_interval_s, 30);
    assert_eq!(w.last_acked_seq.get(), 0);
}

async fn protocol_negotiation(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let token = app.token_for(a.agent.id, t.id);
    let mut sub = app
        .connect_with(Some(&token), "", &[("sec-websocket-protocol", "nexus.v1")])
        .await
        .expect("nexus.v1 accepted");
    sub.welcome().await;
    let mut by_query = app.connect(&token, "v=1").await.expect("v=1 accepted");
    by_query.welcome().await;
    let v2 = app.connect(&token, "v=2").await.expect_err("v=2 refused");
    assert_eq!(v2.status, 400);
    assert_eq!(v2.body["error"]["code"], "unsupported_protocol");
    assert!(
        v2.body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("nexus.v1")
    );
    let other = app
        .connect_with(Some(&token), "", &[("sec-websocket-protocol", "nexus.v9")])
        .await
        .expect_err("refused");
    assert_eq!(other.status, 400);
}

async fn silent_client_is_closed_after_ping_timeout(p: Profile) {
    let app = TestApp::spawn_with(p, |c| {
        c.serve.ws.ping_interval = Duration::from_millis(100);
        c.serve.ws.pong_timeout = Duration::from_millis(200);
    })
    .await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut changes = app.state.hub.presence().subscribe();
    let mut agent = app.online(&a, t.id).await;
    // Stop reading: the client library answers pings only while it reads, so the
    // server hears nothing. Await the server's verdict through presence.
    loop {
        match tokio::time::timeout(Duration::from_secs(15), changes.recv())
            .await
            .expect("offline in time")
        {
            Ok(PresenceChange::Offline { agent_id, .. }) if agent_id == a.agent.id => break,
            _ => continue,
        }
    }
    assert_eq!(agent.closed().await, close::IDLE_TIMEOUT);
}

async fn newer_session_supersedes_older(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let token = app.token_for(a.agent.id, t.id);
    let mut old = app.connect(&token, "").await.expect("connects");
    old.welcome().await;
    let mut new = app.connect(&token, "").await.expect("connects");
    new.welcome().await;
    assert_eq!(old.closed().await, close::SUPERSEDED);
    emit(&app, a.agent.id, 1).await;
    assert_eq!(event(&new.recv().await).1, 1);
}

async fn oversize_frame_closes_with_1009(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app.online(&a, t.id).await;
    let big = format!(
        "{{\"type\":\"heartbeat\",\"pad\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    agent.send_text(&big).await;
    assert_eq!(agent.closed().await, close::MESSAGE_TOO_BIG);
}

async fn expect_error(agent: &mut crate::agent_client::Agent, code: &str) -> Value {
    match agent.recv().await {
        ServerMsg::Error { data } => {
            let v = serde_json::to_value(&data).expect("json");
            assert_eq!(v["code"], code, "{v}");
            v
        }
        other => panic!("expected error {code}, got {other:?}"),
    }
}

async fn malformed_frames_get_errors_and_the_socket_stays_open(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app.online(&a, t.id).await;

    agent.send_text("this is not json").await;
    expect_error(&mut agent, "invalid_json").await;
    agent
        .send(json!({"type": "launch_missiles", "id": "f1"}))
        .await;
    let e = expect_error(&mut agent, "unknown_type").await;
    assert_eq!(e["ref"], "f1");
    agent
        .send(json!({"type": "ack", "data": {"seq": "seven"}}))
        .await;
    expect_error(&mut agent, "invalid_fields").await;
    agent
        .send(json!({"type": "ack", "data": {"seq": 99}}))
        .await;
    expect_error(&mut agent, "invalid_fields").await;
    agent
        .ws
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1, 2, 3,
        ]))
        .await
        .expect("send");
    expect_error(&mut agent, "invalid_json").await;

    // Still open and delivering.
    agent.send(json!({"type": "heartbeat"})).await;
    emit(&app, a.agent.id, 7).await;
    let (kind, seq, _, data) = event(&agent.recv().await);
    assert_eq!((kind, seq, data), ("context_update", 1, json!({"i": 7})));
}

use futures_util::SinkExt;

async fn persistent_abuse_closes_with_1008(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app.online(&a, t.id).await;
    for _ in 0..30 {
        // The server may already have closed; sending into a closing socket is fine.
        let _ = agent
            .ws
            .send(tokio_tungstenite::tungstenite::Message::text("garbage"))
            .await;
    }
    assert_eq!(agent.closed().await, close::POLICY_VIOLATION);
}

async fn token_expiry_warns_then_closes_unless_refreshed(p: Profile) {
    // Margins of seconds: the test must hold on a loaded 2-core CI machine.
    let app = TestApp::spawn_with(p, |c| {
        c.serve.ws.token_warning = Duration::from_millis(3_500);
        c.serve.ws.token_grace = Duration::from_millis(300);
    })
    .await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    // Made before the clock starts: hashing its secret takes seconds on a loaded machine.
    let other = app.agent(t.id, "other").await;
    let now = chrono::Utc::now().timestamp();
    let short = |exp: i64| {
        forge(
            json!({"sub": a.agent.id, "tenant_id": t.id, "client_id": a.agent.client_id,
                   "iat": now, "exp": exp, "jti": uuid::Uuid::now_v7()}),
            TEST_SECRET,
        )
    };
    let mut agent = app.connect(&short(now + 5), "").await.expect("connects");
    agent.welcome().await;
    let ServerMsg::TokenExpiring { data } = agent.recv().await else {
        panic!("expected token_expiring")
    };
    assert!(data.expires_in_s <= 5);

    // A refresh with someone else's token is refused and changes nothing.
    agent
        .send(json!({"type": "refresh", "data": {"token": app.token_for(other.agent.id, t.id)}}))
        .await;
    expect_error(&mut agent, "invalid_token").await;

    // A valid refresh moves the deadline: the next frame is the warning for the new
    // token, not the close the old one would have brought.
    agent
        .send(json!({"type": "refresh", "data": {"token": short(now + 10)}}))
        .await;
    let ServerMsg::TokenExpiring { data } = agent.recv().await else {
        panic!("expected a second token_expiring")
    };
    assert!(
        data.expires_at.timestamp() >= now + 9,
        "the warning is for the refreshed token"
    );
    // No second refresh: closed with 4001 after expiry and grace.
    assert_eq!(agent.closed().await, close::TOKEN_EXPIRED);
}

async fn unknown_tool_gets_a_tool_result_error(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app.online(&a, t.id).await;
    agent
        .send(json!({"type": "tool_request", "data": {"request_id": "r1", "tool": "teleport", "args": {}}}))
        .await;
    let (kind, _, _, data) = event(&agent.recv().await);
    assert_eq!(kind, "tool_result");
    assert_eq!(data["request_id"], "r1");
    assert_eq!(data["ok"], false);
    assert_eq!(data["error"]["code"], "unknown_tool");
}

async fn presence_tracks_ready_status_and_disconnect(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let key = app.operator_key("read", Some(t.id)).await;
    let online = || async {
        let resp = app
            .http
            .get(app.url(&format!("/api/tenants/{}/agents/online", t.id)))
            .bearer_auth(&key)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.expect("json")["agents"].clone()
    };
    assert_eq!(online().await, json!([]));

    let mut changes = app.state.hub.presence().subscribe();
    let mut agent = app.online(&a, t.id).await;
    agent
        .send(json!({"type": "agent_ready", "data": {"capabilities": ["code", "review"]}}))
        .await;
    agent
        .send(json!({"type": "status_update", "data": {"status": "busy", "detail": "reviewing"}}))
        .await;
    loop {
        if let Ok(PresenceChange::Status { status, .. }) = changes.recv().await
            && status == "busy"
        {
            break;
        }
    }
    let agents = online().await;
    assert_eq!(agents.as_array().map(Vec::len), Some(1));
    let me = &agents[0];
    assert_eq!(me["agent_id"], a.agent.id.to_string());
    assert_eq!(me["name"], "bot");
    assert_eq!(me["status"], "busy");
    assert_eq!(me["capabilities"], json!(["code", "review"]));
    assert_eq!(me["node_id"], app.state.node_id.as_str());
    for field in ["connected_at", "last_seen"] {
        assert!(me[field].is_string(), "{field}");
    }

    agent.ws.close(None).await.expect("close");
    loop {
        if let Ok(PresenceChange::Offline { agent_id, .. }) = changes.recv().await
            && agent_id == a.agent.id
        {
            break;
        }
    }
    assert_eq!(online().await, json!([]));
}

async fn inbound_rate_limit_drops_excess_frames_only(p: Profile) {
    let app = TestApp::spawn_with(p, |c| c.serve.ws.inbound_rate = 5).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app.online(&a, t.id).await;
    // A burst of twice the rate passes; the next two frames are dropped with an error each.
    for _ in 0..12 {
        agent.send(json!({"type": "heartbeat"})).await;
    }
    expect_error(&mut agent, "rate_limited").await;
    expect_error(&mut agent, "rate_limited").await;
    // The socket stays open and keeps delivering.
    emit(&app, a.agent.id, 1).await;
    assert_eq!(event(&agent.recv().await).1, 1);
}
