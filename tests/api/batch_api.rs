//! `POST /api/events`: many events in one request, one result per event in order —
//! stored in one commit, checked as the single-event endpoints check them.

use std::sync::Arc;

use nexus::config::Tiers;
use nexus_proto::{AgentId, Seq};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::agent_client::event;
use crate::both_profiles;
use crate::helpers::{Profile, TestApp, TestDb};

both_profiles!(
    a_batch_is_stored_and_delivered_in_request_order,
    each_event_is_checked_as_a_single_emit_checks_it,
    idempotency_keys_answer_the_first_event,
    the_request_itself_is_bounded_and_needs_write,
    a_tenants_events_are_admitted_by_its_quota_together,
    storage_down_is_503_for_the_whole_request,
);

async fn batch(app: &TestApp, key: &str, events: Vec<Value>) -> (StatusCode, Value) {
    app.post_json("/api/events", key, json!({ "events": events }))
        .await
}

/// Each result's status, in order.
fn statuses(body: &Value) -> Vec<u64> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {body}"))
        .iter()
        .map(|r| r["status"].as_u64().unwrap_or_else(|| panic!("{r}")))
        .collect()
}

/// The inbox of `agent` as an operator reads it: (seq, event id, data) in order.
async fn inbox(app: &TestApp, key: &str, agent: AgentId) -> Vec<(u64, String, Value)> {
    let page = app
        .get_json(&format!("/api/agents/{agent}/inbox"), key)
        .await;
    page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|e| {
            let seq = e["seq"].as_u64().expect("seq");
            (
                seq,
                e["id"].as_str().expect("id").to_owned(),
                e["data"].clone(),
            )
        })
        .collect()
}

fn to_agent(agent: AgentId, i: u64) -> Value {
    json!({"agent_id": agent, "type": "task_assigned", "data": {"i": i}})
}

async fn a_batch_is_stored_and_delivered_in_request_order(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let (a, b) = (app.agent(t.id, "a").await, app.agent(t.id, "b").await);
    let mut online_a = app.online(&a, t.id).await;
    let key = app.operator_key("write", None).await;

    let (status, body) = batch(
        &app,
        &key,
        vec![
            to_agent(a.agent.id, 1),
            to_agent(b.agent.id, 2),
            to_agent(a.agent.id, 3),
            json!({"tenant_id": t.id, "type": "context_update", "data": {"all": true}}),
            to_agent(a.agent.id, 4),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), [202; 5]);
    let r = &body["results"];
    // a's three events got consecutive seqs in request order; b's is its first.
    let seqs: Vec<&Value> = [0, 1, 2, 4].iter().map(|i| &r[*i]["seq"]).collect();
    assert_eq!(seqs, [&json!(1), &json!(1), &json!(2), &json!(3)], "{body}");
    assert_eq!(r[3]["agents"], 2, "the tenant's event reached both agents");

    // The connected agent gets its events in that order, with the ids answered.
    for (i, want) in [(0, 1), (2, 3), (4, 4)] {
        let (kind, seq, id, data) = event(&online_a.recv().await);
        assert_eq!(kind, "task_assigned");
        assert_eq!(seq, r[i]["seq"].as_u64().expect("seq"));
        assert_eq!(id, r[i]["id"].as_str().expect("id"));
        assert_eq!(data, json!({ "i": want }));
    }
    let (kind, seq, id, _) = event(&online_a.recv().await);
    assert_eq!((kind, seq), ("context_update", 4));
    assert_eq!(id, r[3]["id"].as_str().expect("id"));

    // Both inboxes hold them.
    let reader = app.operator_key("read", None).await;
    let stored_a: Vec<u64> = inbox(&app, &reader, a.agent.id)
        .await
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(stored_a, [1, 2, 3, 4]);
    let stored_b = inbox(&app, &reader, b.agent.id).await;
    assert_eq!(stored_b.len(), 2);
    assert_eq!(
        (stored_b[0].1.as_str(), &stored_b[0].2),
        (r[1]["id"].as_str().expect("id"), &json!({"i": 2}))
    );
    assert_eq!(stored_b[1].1, r[3]["id"].as_str().expect("id"));
}

async fn each_event_is_checked_as_a_single_emit_checks_it(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let other = app.tenant("other").await;
    let a = app.agent(t.id, "a").await;
    let off = app.agent(t.id, "off").await;
    let outsider = app.agent(other.id, "x").await;
    nexus::admin::set_agent_status(
        &app.state.store,
        &nexus::admin::Actor::Cli,
        off.agent.id,
        nexus::store::AgentStatus::Disabled,
    )
    .await
    .expect("disable");
    // A key of tenant t: the other tenant's agent and the tenant itself are "not found".
    let key = app.operator_key("write", Some(t.id)).await;
    let unknown = AgentId::new_v7();
    let (status, body) = batch(
        &app,
        &key,
        vec![
            to_agent(a.agent.id, 1),
            json!({"agent_id": a.agent.id, "type": "tool_result", "data": {}}),
            to_agent(unknown, 2),
            to_agent(off.agent.id, 3),
            to_agent(outsider.agent.id, 4),
            json!({"agent_id": a.agent.id, "tenant_id": t.id, "type": "wake_up", "data": {}}),
            json!({"type": "wake_up", "data": {}}),
            json!({"agent_id": a.agent.id, "type": "wake_up", "data": [1]}),
            json!({"agent_id": "not-an-id", "type": "wake_up", "data": {}}),
            json!({"tenant_id": t.id, "type": "wake_up", "data": {}, "idempotency_key": "k"}),
            json!({"tenant_id": other.id, "type": "wake_up", "data": {}}),
            to_agent(a.agent.id, 5),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        statuses(&body),
        [202, 400, 404, 409, 404, 400, 400, 400, 400, 400, 404, 202]
    );
    let codes: Vec<&str> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        codes,
        [
            "-",
            "invalid_request",
            "not_found",
            "agent_disabled",
            "not_found",
            "invalid_request",
            "invalid_request",
            "invalid_request",
            "invalid_request",
            "invalid_request",
            "not_found",
            "-"
        ]
    );
    let message = body["results"][5]["error"]["message"]
        .as_str()
        .expect("msg");
    assert!(
        message.contains("agent_id") && message.contains("tenant_id"),
        "{message}"
    );

    // Only the valid events were stored, with consecutive seqs.
    let reader = app.operator_key("read", None).await;
    let stored: Vec<(u64, Value)> = inbox(&app, &reader, a.agent.id)
        .await
        .into_iter()
        .map(|(seq, _, data)| (seq, data))
        .collect();
    assert_eq!(stored, [(1, json!({"i": 1})), (2, json!({"i": 5}))]);
    for refused in [off.agent.id, outsider.agent.id] {
        assert_eq!(app.cursor(refused, &reader).await.last_seq, 0);
    }
}

async fn idempotency_keys_answer_the_first_event(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let (a, b) = (app.agent(t.id, "a").await, app.agent(t.id, "b").await);
    let key = app.operator_key("write", None).await;
    let keyed = |agent: AgentId, k: &str, i: u64| json!({"agent_id": agent, "type": "wake_up", "data": {"i": i}, "idempotency_key": k});
    // A key already stored by the single-event endpoint.
    let (_, single) = app
        .post_json(
            &format!("/api/agents/{}/events", a.agent.id),
            &key,
            keyed(a.agent.id, "k0", 0),
        )
        .await;

    let (status, first) = batch(
        &app,
        &key,
        vec![
            keyed(a.agent.id, "k1", 1),
            keyed(a.agent.id, "k1", 2),
            keyed(b.agent.id, "k1", 3),
            to_agent(a.agent.id, 4),
            keyed(a.agent.id, "k0", 5),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let r = &first["results"];
    assert_eq!(
        r[1], r[0],
        "a key repeated in the batch answers its first event"
    );
    assert_eq!((&r[0]["seq"], &r[3]["seq"]), (&json!(2), &json!(3)));
    assert_eq!(
        r[2]["seq"], 1,
        "the same key for another agent is its own event"
    );
    assert_ne!(r[2]["id"], r[0]["id"]);
    assert_eq!(
        (&r[4]["id"], &r[4]["seq"]),
        (&single["event_id"], &single["seq"]),
        "a key stored before answers the stored event"
    );

    let (_, again) = batch(&app, &key, vec![keyed(a.agent.id, "k1", 6)]).await;
    assert_eq!(
        again["results"][0], r[0],
        "a retried batch answers the first event"
    );

    let reader = app.operator_key("read", None).await;
    let stored: Vec<Value> = inbox(&app, &reader, a.agent.id)
        .await
        .into_iter()
        .map(|e| e.2)
        .collect();
    assert_eq!(stored, [json!({"i": 0}), json!({"i": 1}), json!({"i": 4})]);
    assert_eq!(inbox(&app, &reader, b.agent.id).await.len(), 1);
}

async fn the_request_itself_is_bounded_and_needs_write(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "a").await;
    let key = app.operator_key("write", None).await;

    for n in [0, 1_001] {
        let events = (0..n).map(|i| to_agent(a.agent.id, i)).collect();
        let (status, body) = batch(&app, &key, events).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{n} events: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(
            message.contains("1 to 1000") && message.contains(&n.to_string()),
            "{message}"
        );
    }
    let (status, _) = app
        .post_json("/api/events", &key, json!({"event": []}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The maximum itself is one request.
    let events = (0..1_000).map(|i| to_agent(a.agent.id, i)).collect();
    let (status, body) = batch(&app, &key, events).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(statuses(&body), [202; 1_000]);
    assert_eq!(body["results"][999]["seq"], 1_000);

    let reader = app.operator_key("read", None).await;
    let (status, body) = batch(&app, &reader, vec![to_agent(a.agent.id, 0)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(app.cursor(a.agent.id, &reader).await.last_seq, 1_000);
}

/// `tiny` (the default) holds 2 events in its bucket; `roomy` has no limit.
const TIERS: &str = r#"
default = "tiny"
[tiers.tiny]
events_per_second = 1
events_burst = 2
[tiers.roomy]
"#;

async fn a_tenants_events_are_admitted_by_its_quota_together(p: Profile) {
    let app = TestApp::spawn_with(p, |c| {
        c.tiers = Arc::new(Tiers::parse(TIERS).expect("tiers"));
    })
    .await;
    let tiny = app.tenant("tiny").await;
    let roomy = app.tenant("roomy").await;
    let key = app.operator_key("admin", None).await;
    let (status, _) = app
        .http
        .patch(app.url(&format!("/api/tenants/{}", roomy.id)))
        .bearer_auth(&key)
        .json(&json!({"tier": "roomy"}))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .expect("send");
    assert_eq!(status, StatusCode::OK);
    let (small, big) = (
        app.agent(tiny.id, "s").await,
        app.agent(roomy.id, "b").await,
    );

    // Three events of `tiny` are more than its bucket holds: all three are refused,
    // however the clock goes; `roomy`'s go through.
    let (status, body) = batch(
        &app,
        &key,
        vec![
            to_agent(small.agent.id, 1),
            to_agent(big.agent.id, 2),
            to_agent(small.agent.id, 3),
            json!({"tenant_id": tiny.id, "type": "wake_up", "data": {}}),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(statuses(&body), [429, 202, 429, 429]);
    let refused = &body["results"][0]["error"];
    assert_eq!(refused["code"], "quota_exceeded");
    assert_eq!(refused["details"]["quota"], "events");
    assert!(
        refused["details"]["retry_after_s"].as_u64() >= Some(1),
        "{refused}"
    );
    assert_eq!(app.cursor(small.agent.id, &key).await.last_seq, 0);
    assert_eq!(app.cursor(big.agent.id, &key).await.last_seq, 1);
}

async fn storage_down_is_503_for_the_whole_request(p: Profile) {
    let db = TestDb::new(p).await;
    // PostgreSQL goes through a proxy the test can cut; SQLite's pool is closed under the node.
    let proxy = match p {
        Profile::Postgres => {
            Some(crate::proxy::Proxy::start("127.0.0.1:5432".parse().expect("addr")).await)
        }
        Profile::Sqlite => None,
    };
    let url = match &proxy {
        Some(proxy) => db.url.replace("127.0.0.1:5432", &proxy.addr.to_string()),
        None => db.url.clone(),
    };
    let app = TestApp::spawn_on(db, |c| c.database_url = url).await;
    let t = app.tenant("acme").await;
    let (a, b) = (app.agent(t.id, "a").await, app.agent(t.id, "b").await);
    let key = app.operator_key("write", None).await;
    // Stored while the database answers; the agents, the key and the tier are cached
    // now, so the next request reaches the append before anything else fails.
    let (status, body) = batch(&app, &key, vec![to_agent(a.agent.id, 1)]).await;
    assert_eq!((status, statuses(&body)), (StatusCode::OK, vec![202]));

    match &proxy {
        Some(proxy) => proxy.cut(),
        None => app.state.store.close().await,
    }
    let resp = app
        .http
        .post(app.url("/api/events"))
        .bearer_auth(&key)
        .json(&json!({"events": [to_agent(a.agent.id, 2), to_agent(b.agent.id, 3)]}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");

    // Nothing of the refused request is stored (read beside the node).
    let store = nexus::store::Store::connect(&app.db.url)
        .await
        .expect("connect");
    let seqs = |events: Vec<nexus::store::InboxEvent>| -> Vec<u64> {
        events.iter().map(|e| e.seq.get()).collect()
    };
    let read = |agent| store.read_inbox(agent, Seq::ZERO, 10);
    assert_eq!(seqs(read(a.agent.id).await.expect("read")), [1]);
    assert!(read(b.agent.id).await.expect("read").is_empty());
}
