//! Inputs a token holder or a sender controls stay within bounds: each over-limit value
//! gets a clear answer, never a panic, a 500 or a silenced agent.

use std::time::Duration;

use futures_util::SinkExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::agent_client::event;
use crate::both_profiles;
use crate::gateway::emit;
use crate::helpers::{Profile, TestApp};
use crate::webhook_support::INGEST_SECRET;

both_profiles!(
    a_replay_point_past_the_inbox_cannot_silence_an_agent,
    an_overlong_request_id_is_not_kept_as_a_trace_id,
    an_oversized_status_is_refused_and_changes_nothing,
    a_ping_flood_is_rate_limited_then_closed,
    another_tenants_agent_looks_like_no_agent,
    an_agent_acking_every_event_of_a_backlog_stays_connected,
);

async fn a_replay_point_past_the_inbox_cannot_silence_an_agent(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let token = app.token_for(a.agent.id, t.id);
    emit(&app, a.agent.id, 1).await;
    // Asking to start after seq 1,000,000 when 1 exists starts after 1.
    let mut agent = app
        .connect(&token, "after_seq=1000000")
        .await
        .expect("connects");
    agent.welcome().await;
    // The far ack the replay point would have allowed is refused.
    agent
        .send(json!({"type": "ack", "id": "far", "data": {"seq": 1_000_000}}))
        .await;
    let refused = serde_json::to_value(agent.recv().await).expect("frame");
    assert_eq!(
        (refused["type"].as_str(), refused["data"]["ref"].as_str()),
        (Some("error"), Some("far")),
        "{refused}"
    );
    // And the next event arrives.
    emit(&app, a.agent.id, 2).await;
    assert_eq!(event(&agent.recv().await).1, 2);
}

async fn an_overlong_request_id_is_not_kept_as_a_trace_id(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "downloader").await;
    let source = app.ingest_source(t.id, Some(a.agent.id), None).await;
    let key = app.operator_key("read", None).await;
    for (request_id, kept) in [("a".repeat(129), false), ("b".repeat(128), true)] {
        let resp = app
            .http
            .post(app.url(&source.url_path))
            .bearer_auth(INGEST_SECRET)
            .header("x-request-id", &request_id)
            .json(&json!({"transfer": request_id.len()}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("json");
        let job = app
            .get_json(
                &format!("/api/jobs/{}", body["job_id"].as_str().expect("id")),
                &key,
            )
            .await;
        assert_eq!(job["trace_id"].is_string(), kept, "{job}");
    }
}

async fn an_oversized_status_is_refused_and_changes_nothing(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app.online(&a, t.id).await;
    agent
        .send(json!({"type": "status_update", "id": "big", "data": {"status": "x".repeat(65)}}))
        .await;
    let refused = serde_json::to_value(agent.recv().await).expect("frame");
    assert_eq!(
        (
            refused["data"]["code"].as_str(),
            refused["data"]["ref"].as_str()
        ),
        (Some("invalid_fields"), Some("big")),
        "{refused}"
    );
    // Frames are handled in order: once this one is answered, the first was dropped.
    agent
        .send(json!({"type": "no_such_frame", "id": "sync"}))
        .await;
    agent.recv().await;
    let key = app.operator_key("read", None).await;
    let online = app
        .get_json(&format!("/api/tenants/{}/agents/online", t.id), &key)
        .await;
    assert_eq!(online["agents"][0]["status"], "online", "{online}");
}

async fn a_ping_flood_is_rate_limited_then_closed(p: Profile) {
    let app = TestApp::spawn_with(p, |c| c.serve.ws.inbound_rate = 5).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut agent = app.online(&a, t.id).await;
    // Twice the rate passes as a burst; past it each ping is refused and counted as abuse
    // (20 a minute), so a steady flood ends in 1008 like any other frame flood.
    for _ in 0..60 {
        if agent.ws.send(Message::Ping(vec![1].into())).await.is_err() {
            break;
        }
    }
    assert_eq!(agent.closed().await, 1008);
}

async fn another_tenants_agent_looks_like_no_agent(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (mine, theirs) = (app.tenant("mine").await, app.tenant("theirs").await);
    let hidden = app.agent(theirs.id, "hidden").await.agent.id;
    let made_up = nexus_proto::AgentId::new_v7();
    let key = app.operator_key("write", Some(mine.id)).await;
    let answer = |id: nexus_proto::AgentId| {
        let key = key.clone();
        let app = &app;
        async move {
            let (status, body) = app
                .post_json(
                    &format!("/api/agents/{id}/events"),
                    &key,
                    json!({"type": "wake_up", "data": {"reason": "probe"}}),
                )
                .await;
            (status, body.to_string().replace(&id.to_string(), "ID"))
        }
    };
    let (hidden_answer, made_up_answer) = (answer(hidden).await, answer(made_up).await);
    assert_eq!(
        hidden_answer.0,
        StatusCode::NOT_FOUND,
        "{}",
        hidden_answer.1
    );
    assert_eq!(hidden_answer, made_up_answer);
}

async fn an_agent_acking_every_event_of_a_backlog_stays_connected(p: Profile) {
    // The default inbound rate (50 frames/s): acks that move the cursor do not count.
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    const BACKLOG: u64 = 5_000;
    for chunk in (1..=BACKLOG).collect::<Vec<_>>().chunks(500) {
        futures_util::future::join_all(chunk.iter().map(|i| emit(&app, a.agent.id, *i))).await;
    }
    let mut agent = app.online(&a, t.id).await;
    for expected in 1..=BACKLOG {
        // Anything but the next event (an error frame, a close) fails here.
        let (kind, seq, _, _) = event(&agent.recv().await);
        assert_eq!((kind, seq), ("context_update", expected));
        agent
            .send(json!({"type": "ack", "data": {"seq": seq}}))
            .await;
    }
    // Still connected and served: one more event arrives on the same socket.
    emit(&app, a.agent.id, BACKLOG + 1).await;
    assert_eq!(event(&agent.recv().await).1, BACKLOG + 1);
    let key = app.operator_key("read", None).await;
    crate::cluster::eventually("acks recorded", Duration::from_secs(10), || async {
        app.cursor(a.agent.id, &key).await.acked_seq == BACKLOG
    })
    .await;
}
