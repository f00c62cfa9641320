//! Presence over HTTP: the online list with inbox lag, and the live stream an operator's
//! dashboard reads — on one node of either profile and across a cluster.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::helpers::{Profile, TestApp};
use crate::{both_profiles, cluster_profile};

both_profiles!(
    presence_lists_online_agents_with_their_inbox_lag,
    presence_needs_a_tenant_the_key_may_see,
    the_stream_sends_a_snapshot_then_every_change,
    a_shutting_down_node_ends_the_stream,
);

cluster_profile!(
    an_agent_connecting_on_another_node_shows_in_this_nodes_stream,
    the_stream_says_unavailable_while_redis_is_away_then_resumes,
);

/// A guard against hangs; each wait ends as soon as its event arrives.
const PATIENCE: Duration = Duration::from_secs(15);

/// An open `GET /api/presence/stream`, read event by event.
pub struct PresenceStream {
    resp: reqwest::Response,
    buf: String,
}

impl PresenceStream {
    pub async fn open(app: &TestApp, query: &str, key: &str) -> PresenceStream {
        let resp = app
            .http
            .get(app.url(&format!("/api/presence/stream{query}")))
            .bearer_auth(key)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::OK);
        let ctype = resp.headers()["content-type"].to_str().unwrap_or_default();
        assert!(ctype.starts_with("text/event-stream"), "{ctype}");
        PresenceStream {
            resp,
            buf: String::new(),
        }
    }

    /// The next event: (name, data).
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return (name, serde_json::from_str(&data).expect("event json"));
            }
            let chunk = tokio::time::timeout(PATIENCE, self.resp.chunk())
                .await
                .expect("an event within the patience window")
                .expect("stream read")
                .expect("the stream stays open");
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    /// The agents of the next `presence` event whose list satisfies `want`.
    pub async fn until(&mut self, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        loop {
            let (name, data) = self.next().await;
            if name != "presence" {
                continue;
            }
            let agents = data["agents"].as_array().cloned().expect("agents");
            if want(&agents) {
                return agents;
            }
        }
    }
}

fn ids(agents: &[Value]) -> Vec<&str> {
    agents
        .iter()
        .filter_map(|a| a["agent_id"].as_str())
        .collect()
}

async fn presence_lists_online_agents_with_their_inbox_lag(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let (x, y) = (app.agent(t.id, "x").await, app.agent(t.id, "y").await);
    let key = app.operator_key("read,write", None).await;
    let mut on = app.online(&x, t.id).await;
    for n in 0..3 {
        let body = json!({"type": "wake_up", "data": {"n": n}});
        let path = format!("/api/agents/{}/events", x.agent.id);
        assert_eq!(
            app.post_json(&path, &key, body).await.0,
            StatusCode::ACCEPTED
        );
    }
    for _ in 0..3 {
        on.recv().await;
    }
    on.send(json!({"type": "ack", "data": {"seq": 1}})).await;
    let deadline = Instant::now() + PATIENCE;
    let agent = loop {
        let v = app
            .get_json(&format!("/api/presence?tenant={}", t.id), &key)
            .await;
        let agents = v["agents"].as_array().cloned().expect("agents");
        assert_eq!(
            ids(&agents),
            [x.agent.id.to_string()],
            "only x is online: {v}"
        );
        if agents[0]["acked_seq"] == 1 {
            break agents[0].clone();
        }
        assert!(Instant::now() < deadline, "the ack is recorded: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(agent["name"], "x");
    assert_eq!(agent["node_id"], app.state.node_id.as_str());
    assert_eq!(
        (agent["committed_seq"].as_u64(), agent["lag"].as_u64()),
        (Some(3), Some(2))
    );
    for field in ["status", "connected_at", "last_seen", "capabilities"] {
        assert!(!agent[field].is_null(), "{field} is present: {agent}");
    }
    drop(y);

    // A tenant-bound key needs no `tenant`.
    let own = app.operator_key("read", Some(t.id)).await;
    let v = app.get_json("/api/presence", &own).await;
    assert_eq!(v["agents"].as_array().map(Vec::len), Some(1), "{v}");
}

async fn presence_needs_a_tenant_the_key_may_see(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (a, b) = (app.tenant("a").await, app.tenant("b").await);
    let global = app.operator_key("read", None).await;
    let bound = app.operator_key("read", Some(a.id)).await;
    let status = |path: String, key: String| {
        let req = app.http.get(app.url(&path)).bearer_auth(key);
        async move { req.send().await.expect("send").status() }
    };
    for path in ["/api/presence", "/api/presence/stream"] {
        let missing = app.get_json(path, &global).await;
        assert_eq!(missing["error"]["code"], "invalid_request", "{missing}");
        assert!(
            missing["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("tenant")
        );
        let other = format!("{path}?tenant={}", b.id);
        assert_eq!(status(other, bound.clone()).await, StatusCode::NOT_FOUND);
        let unknown = format!("{path}?tenant={}", uuid::Uuid::now_v7());
        assert_eq!(status(unknown, global.clone()).await, StatusCode::NOT_FOUND);
        assert_eq!(
            status(format!("{path}?tenant={}", a.id), "nope".into()).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

async fn the_stream_sends_a_snapshot_then_every_change(p: Profile) {
    // A short request bound: the stream must outlive it.
    let bound = Duration::from_millis(300);
    let app = TestApp::spawn_with(p, |c| c.serve.db.request_timeout = bound).await;
    let t = app.tenant("acme").await;
    let x = app.agent(t.id, "x").await;
    let key = app.operator_key("read", Some(t.id)).await;
    let mut stream = PresenceStream::open(&app, "", &key).await;
    assert!(
        stream.until(|_| true).await.is_empty(),
        "the snapshot comes at once"
    );
    // Time passing is the point here: the stream is not cut at the request bound.
    tokio::time::sleep(bound * 2).await;

    let on = app.online(&x, t.id).await;
    let agents = stream.until(|a| !a.is_empty()).await;
    assert_eq!(ids(&agents), [x.agent.id.to_string()]);
    assert_eq!(agents[0]["status"], "online");

    drop(on);
    stream.until(<[Value]>::is_empty).await;
}

async fn a_shutting_down_node_ends_the_stream(p: Profile) {
    // A grace far past the patience: a stream holding the node up would fail the test.
    let app = TestApp::spawn_with(p, |c| c.serve.shutdown_grace_s = 600).await;
    let t = app.tenant("acme").await;
    let key = app.operator_key("read", Some(t.id)).await;
    let mut stream = PresenceStream::open(&app, "", &key).await;
    stream.until(|_| true).await;
    // An open dashboard does not hold the node up: the stream ends and the node stops.
    tokio::time::timeout(PATIENCE, app.stop())
        .await
        .expect("the node stops with a stream open");
    let rest = tokio::time::timeout(PATIENCE, stream.resp.chunk())
        .await
        .expect("the stream ends");
    assert!(matches!(rest, Ok(None) | Err(_)), "{rest:?}");
}

async fn an_agent_connecting_on_another_node_shows_in_this_nodes_stream() {
    let c = Cluster::start(2).await;
    let (n0, n1) = (&c.nodes[0], &c.nodes[1]);
    let t = n0.tenant("acme").await;
    let x = n0.agent(t.id, "x").await;
    let key = n0.operator_key("read", None).await;
    let mut stream = PresenceStream::open(n0, &format!("?tenant={}", t.id), &key).await;
    assert!(stream.until(|_| true).await.is_empty());

    let connected = Instant::now();
    let on = n1.online(&x, t.id).await;
    let agents = stream.until(|a| !a.is_empty()).await;
    eprintln!("shown on the other node after {:?}", connected.elapsed());
    assert_eq!(ids(&agents), [x.agent.id.to_string()]);
    assert_eq!(
        agents[0]["node_id"],
        c.node_id(1),
        "the node holding the socket"
    );

    let dropped = Instant::now();
    drop(on);
    stream.until(<[Value]>::is_empty).await;
    eprintln!("gone on the other node after {:?}", dropped.elapsed());
}

/// The dashboard learns that its view is stale while Redis is away, and gets the
/// fresh list once it is back.
async fn the_stream_says_unavailable_while_redis_is_away_then_resumes() {
    let upstream = crate::helpers::redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .expect("NEXUS_TEST_REDIS_URL as redis://HOST:PORT");
    let proxy = crate::proxy::Proxy::start(upstream).await;
    let via_proxy = format!("redis://{}", proxy.addr);
    let c = Cluster::start_with(1, |_, cfg| cfg.serve.redis_url = Some(via_proxy.clone())).await;
    let node = &c.nodes[0];
    let t = node.tenant("acme").await;
    let a = node.agent(t.id, "alice").await;
    let key = node.operator_key("read", None).await;
    let _ws = node.online(&a, t.id).await;
    let mut stream = PresenceStream::open(node, &format!("?tenant={}", t.id), &key).await;
    let (name, first) = stream.next().await;
    assert_eq!(name, "presence");
    assert_eq!(first["agents"].as_array().map(Vec::len), Some(1));
    proxy.cut();
    let (name, data) = stream.next().await;
    assert_eq!(name, "unavailable", "{data}");
    assert!(
        data["message"]
            .as_str()
            .is_some_and(|m| m.contains("not answering"))
    );
    proxy.restore().await;
    let (name, back) = stream.next().await;
    assert_eq!(name, "presence");
    assert_eq!(back["agents"][0]["agent_id"], a.agent.id.to_string());
}
