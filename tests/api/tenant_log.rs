//! Tenant-wide events stored once, in the tenant's log: each agent's stream merges its
//! own inbox with the log from its subscription point, in one seq space per agent.

use nexus::bus::NewEvent;
use nexus_proto::{EventType, TenantId};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::agent_client::{Agent, event};
use crate::both_profiles;
use crate::helpers::{Profile, TestApp};

both_profiles!(
    tenant_events_merge_into_each_agents_stream,
    a_live_tenant_event_reaches_each_session_at_its_own_seq,
);

async fn broadcast(app: &TestApp, key: &str, tenant: TenantId, note: &str) -> String {
    let (status, body) = app
        .post_json(
            &format!("/api/tenants/{tenant}/events"),
            key,
            json!({"type": "context_update", "data": {"note": note}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["event_id"].as_str().expect("event_id").to_owned()
}

async fn own(app: &TestApp, tenant: TenantId, agent: nexus_proto::AgentId, note: &str) {
    let ev = NewEvent::from_json(EventType::ContextUpdate, &json!({ "note": note }));
    app.state
        .hub
        .emit_to_agent(tenant, agent, ev)
        .await
        .expect("emit");
}

/// The next `n` events: (seq, note).
async fn notes(ws: &mut Agent, n: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (_, seq, _, data) = event(&ws.recv().await);
        out.push((seq, data["note"].as_str().unwrap_or_default().to_owned()));
        ws.send(json!({"type": "ack", "data": {"seq": seq}})).await;
    }
    out
}

fn expect(list: &[(u64, &str)]) -> Vec<(u64, String)> {
    list.iter().map(|(s, n)| (*s, (*n).to_owned())).collect()
}

async fn tenant_events_merge_into_each_agents_stream(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "a").await;
    let b = app.agent(t.id, "b").await;
    let key = app.operator_key("write", Some(t.id)).await;
    own(&app, t.id, a.agent.id, "a1").await;
    own(&app, t.id, a.agent.id, "a2").await;
    broadcast(&app, &key, t.id, "all1").await;
    own(&app, t.id, a.agent.id, "a3").await;
    broadcast(&app, &key, t.id, "all2").await;
    // Created after both: subscribed from here on.
    let c = app.agent(t.id, "c").await;
    broadcast(&app, &key, t.id, "all3").await;

    let reader = app.operator_key("read", None).await;
    assert_eq!(app.cursor(a.agent.id, &reader).await.last_seq, 6);
    assert_eq!(app.cursor(b.agent.id, &reader).await.last_seq, 3);
    assert_eq!(app.cursor(c.agent.id, &reader).await.last_seq, 1);
    // Stored once each, whatever the number of agents.
    let log = app
        .state
        .store
        .read_tenant_log(t.id, 0, 100, 100)
        .await
        .expect("log");
    assert_eq!(log.len(), 3);

    let mut ws = app.online(&a, t.id).await;
    assert_eq!(
        notes(&mut ws, 6).await,
        expect(&[
            (1, "a1"),
            (2, "a2"),
            (3, "all1"),
            (4, "a3"),
            (5, "all2"),
            (6, "all3")
        ])
    );
    // A resume reads the same merged stream from any point.
    let token = app.token_for(a.agent.id, t.id);
    let mut again = app.connect(&token, "after_seq=2").await.expect("connects");
    again.welcome().await;
    assert_eq!(
        notes(&mut again, 4).await,
        expect(&[(3, "all1"), (4, "a3"), (5, "all2"), (6, "all3")])
    );
    let mut ws = app.online(&b, t.id).await;
    assert_eq!(
        notes(&mut ws, 3).await,
        expect(&[(1, "all1"), (2, "all2"), (3, "all3")])
    );
    // The operator's inbox page is the same stream.
    let page = app
        .get_json(&format!("/api/agents/{}/inbox", c.agent.id), &reader)
        .await;
    let seqs: Vec<&Value> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["data"]["note"])
        .collect();
    assert_eq!(seqs, vec![&json!("all3")]);
}

async fn a_live_tenant_event_reaches_each_session_at_its_own_seq(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "a").await;
    let b = app.agent(t.id, "b").await;
    let key = app.operator_key("write", Some(t.id)).await;
    let mut wa = app.online(&a, t.id).await;
    let mut wb = app.online(&b, t.id).await;
    own(&app, t.id, a.agent.id, "a1").await;
    own(&app, t.id, a.agent.id, "a2").await;
    assert_eq!(notes(&mut wa, 2).await, expect(&[(1, "a1"), (2, "a2")]));

    let id = broadcast(&app, &key, t.id, "all").await;
    let (kind, seq, got, _) = event(&wa.recv().await);
    assert_eq!(
        (kind, seq, got.as_str()),
        ("context_update", 3, id.as_str())
    );
    let (kind, seq, got, _) = event(&wb.recv().await);
    assert_eq!(
        (kind, seq, got.as_str()),
        ("context_update", 1, id.as_str())
    );
    // Own events go on after it in the same seq space.
    own(&app, t.id, b.agent.id, "b1").await;
    assert_eq!(notes(&mut wb, 1).await, expect(&[(2, "b1")]));
}
