//! The cluster profile: several nodes on one PostgreSQL and one Redis. Cross-node
//! delivery, tenant fan-out, one online list, supersede, and the Redis key layout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fred::prelude::*;
use nexus_proto::{AgentId, ServerMsg, TenantId, close};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::agent_client::{Agent, event};
use crate::cli::{json_lines, nexus};
use crate::cluster_profile;
use crate::helpers::{Profile, TestApp, TestDb};

cluster_profile!(
    events_cross_nodes_both_ways_in_order,
    tenant_fan_out_reaches_agents_on_every_node,
    every_node_lists_the_same_online_agents,
    a_newer_session_on_another_node_supersedes_the_older,
    redis_keys_follow_the_documented_layout,
    a_node_stopped_gracefully_leaves_nothing_in_redis,
);

pub struct Cluster {
    pub nodes: Vec<TestApp>,
    pub db: TestDb,
    pub redis_url: String,
}

impl Cluster {
    /// `n` nodes on a fresh PostgreSQL schema and the test Redis (the tests run under
    /// `cluster_profile!`, which checks both are configured).
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, |_, _| {}).await
    }

    pub async fn start_with(
        n: usize,
        tweak: impl Fn(usize, &mut nexus::config::Config),
    ) -> Cluster {
        let redis_url = crate::helpers::redis_url();
        let db = TestDb::new(Profile::Postgres).await;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            nodes.push(Cluster::node(&db, &redis_url, i, &tweak).await);
        }
        Cluster {
            nodes,
            db,
            redis_url,
        }
    }

    pub async fn node(
        db: &TestDb,
        redis_url: &str,
        i: usize,
        tweak: &impl Fn(usize, &mut nexus::config::Config),
    ) -> TestApp {
        TestApp::spawn_on(TestDb::shared(&db.url), |c| {
            c.serve.redis_url = Some(redis_url.to_owned());
            // Only announcements (and the reconcile after a resubscribe) deliver across
            // nodes here: the periodic safety net would hide a lost one.
            c.serve.reconcile_interval = Duration::from_secs(3600);
            let id = uuid::Uuid::new_v4().simple().to_string();
            c.serve.node_id = Some(format!("n{i}-{}", &id[..8]));
            tweak(i, c);
        })
        .await
    }

    pub fn node_id(&self, i: usize) -> &str {
        &self.nodes[i].state.node_id
    }

    pub async fn redis(&self) -> Client {
        let client = Client::new(
            Config::from_url(&self.redis_url).expect("redis url"),
            None,
            None,
            None,
        );
        client.init().await.expect("redis");
        client
    }
}

/// Agent x online on node 0, agent y on node 1, and a read/write operator key.
pub struct Crossed {
    pub tenant: TenantId,
    pub x: AgentId,
    pub y: AgentId,
    pub on_0: Agent,
    pub on_1: Agent,
    pub key: String,
}

impl Crossed {
    pub async fn new(c: &Cluster) -> Crossed {
        let (n0, n1) = (&c.nodes[0], &c.nodes[1]);
        let t = n0.tenant("acme").await;
        let (x, y) = (n0.agent(t.id, "x").await, n0.agent(t.id, "y").await);
        Crossed {
            tenant: t.id,
            x: x.agent.id,
            y: y.agent.id,
            on_0: n0.online(&x, t.id).await,
            on_1: n1.online(&y, t.id).await,
            key: n0.operator_key("read,write", None).await,
        }
    }

    /// `{"i": i}` to x through node 1 and to y through node 0: both cross nodes.
    pub async fn emit_across(&self, c: &Cluster, i: u64) {
        assert_eq!(
            wake(&c.nodes[1], &self.key, self.x, i).await,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            wake(&c.nodes[0], &self.key, self.y, i).await,
            StatusCode::ACCEPTED
        );
    }
}

/// A `wake_up` with data `{"i": i}` to `agent` through `node`'s API.
pub async fn wake(node: &TestApp, key: &str, agent: AgentId, i: u64) -> StatusCode {
    let body = json!({"type": "wake_up", "data": {"i": i}});
    node.post_json(&format!("/api/agents/{agent}/events"), key, body)
        .await
        .0
}

/// Reads `n` events and checks they are seqs `first..first+n` in order; returns their data.
pub async fn expect_in_order(agent: &mut Agent, first: u64, n: u64) -> Vec<Value> {
    let mut out = Vec::new();
    for want in first..first + n {
        let msg = agent.recv().await;
        let (_, seq, _, data) = event(&msg);
        assert_eq!(seq, want, "events out of order or missing");
        out.push(data);
    }
    out
}

/// The agent ids (and nodes) a node lists as online for the tenant.
pub async fn online(app: &TestApp, key: &str, tenant: TenantId) -> BTreeSet<(String, String)> {
    let v = app
        .get_json(&format!("/api/tenants/{tenant}/agents/online"), key)
        .await;
    v["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| {
            (
                a["agent_id"].as_str().expect("id").to_owned(),
                a["node_id"].as_str().expect("node").to_owned(),
            )
        })
        .collect()
}

/// Polls `check` every 50 ms until it holds; fails after `patience`. Returns the wait.
pub async fn eventually<F, Fut>(what: &str, patience: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < patience,
            "{what}: not within {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

pub fn listed(set: &std::collections::BTreeSet<(String, String)>, agent: AgentId) -> bool {
    set.iter().any(|(a, _)| *a == agent.to_string())
}

async fn events_cross_nodes_both_ways_in_order() {
    let c = Cluster::start(2).await;
    let mut p = Crossed::new(&c).await;
    for i in 0..40 {
        p.emit_across(&c, i).await;
    }
    let want: Vec<Value> = (0..40).map(|i| json!({"i": i})).collect();
    assert_eq!(expect_in_order(&mut p.on_0, 1, 40).await, want);
    assert_eq!(expect_in_order(&mut p.on_1, 1, 40).await, want);
}

async fn tenant_fan_out_reaches_agents_on_every_node() {
    let c = Cluster::start(3).await;
    let t = c.nodes[0].tenant("acme").await;
    let mut sockets = Vec::new();
    for i in 0..6 {
        let agent = c.nodes[0].agent(t.id, &format!("bot{i}")).await;
        sockets.push(c.nodes[i % 3].online(&agent, t.id).await);
    }
    let key = c.nodes[0].operator_key("read,write", None).await;
    let body = json!({"type": "context_update", "data": {"all": true}});
    let path = format!("/api/tenants/{}/events", t.id);
    let (status, v) = c.nodes[1].post_json(&path, &key, body).await;
    assert_eq!(
        (status, v["agents"].as_u64()),
        (StatusCode::ACCEPTED, Some(6))
    );
    for s in &mut sockets {
        assert_eq!(expect_in_order(s, 1, 1).await, vec![json!({"all": true})]);
    }
}

async fn every_node_lists_the_same_online_agents() {
    let c = Cluster::start(2).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let t = a.tenant("acme").await;
    let key = a.operator_key("read", None).await;
    let (x, y) = (a.agent(t.id, "x").await, a.agent(t.id, "y").await);
    let _x = a.online(&x, t.id).await;
    let mut ys = b.online(&y, t.id).await;
    let want: BTreeSet<(String, String)> = [
        (x.agent.id.to_string(), c.node_id(0).to_owned()),
        (y.agent.id.to_string(), c.node_id(1).to_owned()),
    ]
    .into();
    assert_eq!(online(a, &key, t.id).await, want);
    assert_eq!(online(b, &key, t.id).await, want);
    // `nexus presence list` reads the same view from Redis, without a node.
    let tenant = t.id.to_string();
    let args = ["presence", "list", "--tenant", tenant.as_str()];
    let cli = json_lines(&nexus(
        &c.db,
        &[&args[..], &["--redis-url", &c.redis_url]].concat(),
    ));
    let from_cli: BTreeSet<(String, String)> = cli
        .iter()
        .map(|a| {
            (
                a["agent_id"].as_str().expect("id").to_owned(),
                a["node_id"].as_str().expect("node").to_owned(),
            )
        })
        .collect();
    assert_eq!(from_cli, want);
    assert!(cli.iter().any(|a| a["name"] == "x"));
    // Without Redis the CLI says where presence is instead of printing nothing.
    let embedded = std::process::Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(args)
        .env("DATABASE_URL", &c.db.url)
        .env_remove("REDIS_URL")
        .output()
        .expect("run nexus");
    assert!(!embedded.status.success());
    assert!(String::from_utf8_lossy(&embedded.stderr).contains("/agents/online"));

    // A status set on node B is what node A shows (read after B's answer: the
    // status is written before B reads the next frame, so a second frame orders it).
    ys.send(json!({"type": "status_update", "data": {"status": "busy", "detail": "PR 7"}}))
        .await;
    ys.send_text("not json").await;
    assert!(matches!(ys.recv().await, ServerMsg::Error { .. }));
    let v = a
        .get_json(&format!("/api/tenants/{}/agents/online", t.id), &key)
        .await;
    let listed = v["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|e| e["agent_id"] == json!(y.agent.id))
        .expect("y listed")
        .clone();
    assert_eq!(
        (listed["status"].as_str(), listed["detail"].as_str()),
        (Some("busy"), Some("PR 7"))
    );
    assert_eq!(listed["name"], "y");

    // Gone on B: gone everywhere.
    drop(ys);
    let only_x: BTreeSet<(String, String)> =
        [(x.agent.id.to_string(), c.node_id(0).to_owned())].into();
    eventually("y gone everywhere", Duration::from_secs(15), || async {
        online(a, &key, t.id).await == only_x
    })
    .await;
}

async fn a_newer_session_on_another_node_supersedes_the_older() {
    let c = Cluster::start(2).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let t = a.tenant("acme").await;
    let x = a.agent(t.id, "x").await;
    let key = a.operator_key("read", None).await;
    let mut old = a.online(&x, t.id).await;
    let mut new = b
        .connect(&b.token_for(x.agent.id, t.id), "")
        .await
        .expect("connects");
    let session = new.welcome().await.session_id;
    assert_eq!(old.closed().await, close::SUPERSEDED);
    let want: BTreeSet<(String, String)> =
        [(x.agent.id.to_string(), c.node_id(1).to_owned())].into();
    assert_eq!(online(a, &key, t.id).await, want);
    let redis = c.redis().await;
    let holder: Option<String> = redis
        .get(format!("agent:{}", x.agent.id))
        .await
        .expect("get");
    assert_eq!(holder, Some(session.to_string()));
}

async fn redis_keys_follow_the_documented_layout() {
    let c = Cluster::start(1).await;
    let a = &c.nodes[0];
    let t = a.tenant("acme").await;
    let x = a.agent(t.id, "x").await;
    let mut ws = a
        .connect(&a.token_for(x.agent.id, t.id), "")
        .await
        .expect("connects");
    let sid = ws.welcome().await.session_id;
    ws.send(json!({"type": "agent_ready", "data": {"capabilities": ["code", "review"]}}))
        .await;
    ws.send_text("{}").await;
    assert!(matches!(ws.recv().await, ServerMsg::Error { .. }));

    let redis = c.redis().await;
    let hash: std::collections::HashMap<String, String> = redis
        .hgetall(format!("socket:{sid}"))
        .await
        .expect("hgetall");
    assert_eq!(hash["agent_id"], x.agent.id.to_string());
    assert_eq!(hash["tenant_id"], t.id.to_string());
    assert_eq!(hash["node_id"], c.node_id(0));
    assert_eq!(hash["status"], "online");
    assert_eq!(hash["capabilities"], r#"["code","review"]"#);
    assert!(hash["connected_at"].parse::<i64>().expect("ms") > 0);
    let ttl = |key: String| {
        let redis = redis.clone();
        async move { redis.ttl::<i64, _>(key).await.expect("ttl") }
    };
    assert!((290..=300).contains(&ttl(format!("socket:{sid}")).await));
    assert!((290..=300).contains(&ttl(format!("agent:{}", x.agent.id)).await));
    let holder: String = redis
        .get(format!("agent:{}", x.agent.id))
        .await
        .expect("get");
    assert_eq!(holder, sid.to_string());
    let score: f64 = redis
        .zscore(format!("tenant:{}:agents", t.id), x.agent.id.to_string())
        .await
        .expect("zscore");
    let expiry_in = score as i64 - chrono::Utc::now().timestamp_millis();
    assert!(
        (290_000..=300_000).contains(&expiry_in),
        "scored by expiry: {expiry_in}"
    );
    assert!((1..=15).contains(&ttl(format!("node:{}", c.node_id(0))).await));
    assert!((86_000..=86_400).contains(&ttl(format!("agent:{}:fence", x.agent.id)).await));
    assert!(hash["fence"].parse::<u64>().expect("fence") > 0);

    // Leaving removes the socket, the pointer and the membership.
    drop(ws);
    eventually("keys removed", Duration::from_secs(15), || async {
        let exists: i64 = redis
            .exists(vec![
                format!("socket:{sid}"),
                format!("agent:{}", x.agent.id),
            ])
            .await
            .expect("exists");
        let member: Option<f64> = redis
            .zscore(format!("tenant:{}:agents", t.id), x.agent.id.to_string())
            .await
            .expect("zscore");
        exists == 0 && member.is_none()
    })
    .await;
}

async fn a_node_stopped_gracefully_leaves_nothing_in_redis() {
    let mut c = Cluster::start(2).await;
    let leaving = c.nodes.pop().expect("two nodes");
    let t = leaving.tenant("acme").await;
    let x = leaving.agent(t.id, "x").await;
    let mut ws = leaving.online(&x, t.id).await;
    let node_id = leaving.state.node_id.clone();
    let stopped = tokio::spawn(leaving.stop());
    assert_eq!(ws.closed().await, close::SERVICE_RESTART);
    stopped.await.expect("stopped");

    let redis = c.redis().await;
    let left: i64 = redis
        .exists(vec![
            format!("node:{node_id}"),
            format!("node:{node_id}:sockets"),
            format!("agent:{}", x.agent.id),
        ])
        .await
        .expect("exists");
    assert_eq!(left, 0, "the node's keys outlived it");
    let member: bool = redis
        .sismember("nexus:nodes", node_id.as_str())
        .await
        .expect("sismember");
    assert!(!member);
    let key = c.nodes[0].operator_key("read", None).await;
    assert!(online(&c.nodes[0], &key, t.id).await.is_empty());
}
