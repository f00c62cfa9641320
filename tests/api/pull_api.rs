//! `GET /api/agents/me/inbox` and `POST /api/agents/me/ack`: an agent without a socket
//! pulls the same events a socket would get, in order, acks them durably, and a
//! waiting poll ends as soon as an event is emitted (on any node of a cluster).

use std::time::{Duration, Instant};

use nexus_proto::TenantId;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::agent_client::event;
use crate::cluster::Cluster;
use crate::helpers::{Profile, TestApp};
use crate::{both_profiles, cluster_profile};

both_profiles!(
    pulled_events_are_the_socket_frames_in_order,
    an_ack_moves_the_cursor_for_good,
    a_waiting_poll_returns_the_event_emitted_meanwhile,
    only_an_agent_token_with_good_params_is_answered,
    a_poll_outlasts_the_api_request_bound,
);
cluster_profile!(a_poll_on_one_node_wakes_for_an_event_emitted_through_another);

/// A guard against hangs: a poll asked to wait 30 s must answer well before.
const WELL_BEFORE: Duration = Duration::from_secs(10);

struct Setup {
    tenant: TenantId,
    agent: nexus_proto::AgentId,
    token: String,
    key: String,
}

async fn setup(app: &TestApp) -> Setup {
    let tenant = app.tenant("acme").await.id;
    let agent = app.agent(tenant, "puller").await.agent.id;
    Setup {
        tenant,
        agent,
        token: app.token_for(agent, tenant),
        key: app.operator_key("read,write", None).await,
    }
}

async fn emit(app: &TestApp, s: &Setup, n: u64) -> u64 {
    let path = format!("/api/agents/{}/events", s.agent);
    let body = json!({"type": "task_assigned", "data": {"n": n}});
    let (status, v) = app.post_json(&path, &s.key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    v["seq"].as_u64().expect("seq")
}

async fn pull(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    let resp = app
        .http
        .get(app.url(&format!("/api/agents/me/inbox{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    (resp.status(), resp.json().await.unwrap_or_default())
}

async fn ack(app: &TestApp, token: &str, seq: u64) -> (StatusCode, Value) {
    app.post_json("/api/agents/me/ack", token, json!({ "seq": seq }))
        .await
}

fn seqs(v: &Value) -> Vec<u64> {
    v["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or_else(|| panic!("{e}")))
        .collect()
}

async fn pulled_events_are_the_socket_frames_in_order(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let s = setup(&app).await;
    for n in 1..=5 {
        emit(&app, &s, n).await;
    }

    let (status, pulled) = pull(&app, &s.token, "").await;
    assert_eq!(status, StatusCode::OK, "{pulled}");
    assert_eq!(seqs(&pulled), [1, 2, 3, 4, 5]);
    assert_eq!(pulled["acked_seq"], 0);
    // The very frames a socket gets for the same inbox.
    let mut ws = app.connect(&s.token, "").await.expect("connects");
    ws.welcome().await;
    for frame in pulled["events"].as_array().expect("events") {
        let sent = ws.recv().await;
        assert_eq!(frame, &serde_json::to_value(&sent).expect("json"));
        let (kind, seq, id, data) = event(&sent);
        assert_eq!(
            (frame["type"].as_str(), frame["id"].as_str()),
            (Some(kind), Some(id.as_str()))
        );
        assert_eq!((frame["seq"].as_u64(), &frame["data"]), (Some(seq), &data));
    }

    let (_, page) = pull(&app, &s.token, "?after_seq=1&limit=2").await;
    assert_eq!(seqs(&page), [2, 3]);
    let (_, rest) = pull(&app, &s.token, "?after_seq=3&limit=500").await;
    assert_eq!(seqs(&rest), [4, 5]);
    let (status, empty) = pull(&app, &s.token, "?after_seq=5&wait=0").await;
    assert_eq!((status, &empty["events"]), (StatusCode::OK, &json!([])));
}

async fn an_ack_moves_the_cursor_for_good(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let s = setup(&app).await;
    for n in 1..=4 {
        emit(&app, &s, n).await;
    }

    assert_eq!(
        ack(&app, &s.token, 2).await,
        (StatusCode::OK, json!({"acked_seq": 2}))
    );
    let (_, after_ack) = pull(&app, &s.token, "").await;
    assert_eq!(
        (seqs(&after_ack), &after_ack["acked_seq"]),
        (vec![3, 4], &json!(2))
    );
    // Cumulative and never backwards; repeating is harmless.
    assert_eq!(
        ack(&app, &s.token, 1).await,
        (StatusCode::OK, json!({"acked_seq": 2}))
    );
    assert_eq!(
        ack(&app, &s.token, 3).await,
        (StatusCode::OK, json!({"acked_seq": 3}))
    );
    assert_eq!(
        ack(&app, &s.token, 3).await,
        (StatusCode::OK, json!({"acked_seq": 3}))
    );
    let (status, beyond) = ack(&app, &s.token, 5).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{beyond}");
    assert_eq!(beyond["error"]["code"], "invalid");
    assert!(
        beyond["error"]["details"]["fields"]["seq"].is_string(),
        "{beyond}"
    );

    // Durable: a restarted node resumes after the ack, for polls and sockets alike.
    let db = app.stop().await;
    let app = TestApp::spawn_on(db, |_| {}).await;
    let token = app.token_for(s.agent, s.tenant);
    let (_, resumed) = pull(&app, &token, "").await;
    assert_eq!(
        (seqs(&resumed), &resumed["acked_seq"]),
        (vec![4], &json!(3))
    );
    let mut ws = app.connect(&token, "").await.expect("connects");
    ws.welcome().await;
    assert_eq!(event(&ws.recv().await).1, 4);
}

async fn a_waiting_poll_returns_the_event_emitted_meanwhile(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let s = setup(&app).await;

    let started = Instant::now();
    let poll = pull(&app, &s.token, "?wait=30");
    let emitter = async {
        // The poll is waiting once the node has registered it.
        let pollers = &app.state.hub;
        wait_until(|| pollers.polling(s.agent)).await;
        emit(&app, &s, 1).await
    };
    let ((status, pulled), seq) = tokio::join!(poll, emitter);

    assert_eq!(status, StatusCode::OK, "{pulled}");
    assert_eq!(seqs(&pulled), [seq]);
    assert!(started.elapsed() < WELL_BEFORE, "{:?}", started.elapsed());
}

async fn only_an_agent_token_with_good_params_is_answered(profile: Profile) {
    let app = TestApp::spawn(profile).await;
    let s = setup(&app).await;

    let (status, v) = pull(&app, &s.key, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let resp = app
        .http
        .get(app.url("/api/agents/me/inbox"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = ack(&app, &s.key, 0).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (query, field) in [
        ("?wait=31", "wait"),
        ("?wait=-1", "wait"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?after_seq=x", "after_seq"),
    ] {
        let (status, v) = pull(&app, &s.token, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert_eq!(v["error"]["code"], "invalid", "{query}: {v}");
        assert!(
            v["error"]["details"]["fields"][field].is_string(),
            "{query}: {v}"
        );
    }
}

async fn a_poll_outlasts_the_api_request_bound(profile: Profile) {
    // Other API requests are cut after 1 s here; a poll waits as long as it asked.
    let app = TestApp::spawn_with(profile, |c| {
        c.serve.db.request_timeout = Duration::from_secs(1)
    })
    .await;
    let s = setup(&app).await;

    let started = Instant::now();
    let (status, pulled) = pull(&app, &s.token, "?wait=2").await;

    assert_eq!(
        (status, &pulled["events"]),
        (StatusCode::OK, &json!([])),
        "{pulled}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

async fn a_poll_on_one_node_wakes_for_an_event_emitted_through_another() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let s = setup(a).await;

    let started = Instant::now();
    let poll = pull(b, &s.token, "?wait=30");
    let emitter = async {
        wait_until(|| b.state.hub.polling(s.agent)).await;
        emit(a, &s, 1).await
    };
    let ((status, pulled), seq) = tokio::join!(poll, emitter);

    assert_eq!(status, StatusCode::OK, "{pulled}");
    assert_eq!(seqs(&pulled), [seq]);
    assert!(started.elapsed() < WELL_BEFORE, "{:?}", started.elapsed());
}

/// Polls `cond` until it holds (a guard of 10 s against hangs).
async fn wait_until(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WELL_BEFORE;
    while !cond() {
        assert!(Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
