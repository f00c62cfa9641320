//! An agent that stops reading with 10,000 events queued: the node (a real process)
//! keeps its memory bounded, closes the agent as a slow consumer on time, and serves
//! the other agents meanwhile.

use std::sync::Arc;
use std::time::Duration;

use nexus::store::{NewInboxEvent, Retention, Store};
use nexus_proto::{AgentId, EventId, EventType, TenantId, close};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::agent_client::{connect_at, event};
use crate::crash::spawn_serve;
use crate::helpers::{Profile, TestDb, request_token};

const BACKLOG: usize = 10_000;
/// Each event's padding: the backlog (80 MiB) is far more than the node may hold.
const PAD_BYTES: usize = 8 * 1024;
/// The node's pong timeout, which also bounds a write the agent does not take.
const STALL: Duration = Duration::from_secs(2);
/// What the node may grow by while the agent is stuck: its outbound queue and a
/// replay page, not the backlog.
const MEMORY_BOUND_KIB: u64 = 40 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_stops_reading_a_backlog_is_closed_on_time_and_others_are_served() {
    let db = TestDb::new(Profile::Sqlite).await;
    let fixture = Fixture::new(&db.url).await;
    let (node, addr) = spawn_serve(&db.url, &[("NEXUS_WS_PONG_TIMEOUT", "2s")]).await;
    let pid = node.id().expect("pid");
    let http = reqwest::Client::new();
    let slow_token = token(&http, &addr, &fixture.slow).await;
    let fast_token = token(&http, &addr, &fixture.fast).await;
    let baseline = memory_kib(pid);

    // The slow agent connects and never reads a frame, not even its welcome.
    let mut slow = connect_at(&addr, Some(&slow_token), "", &[])
        .await
        .expect("slow connects");
    let stopped_reading = Instant::now();

    // While it is stuck, the other agent gets what is sent to it.
    let mut fast = connect_at(&addr, Some(&fast_token), "", &[])
        .await
        .expect("fast connects");
    fast.welcome().await;
    for i in 1..=20u64 {
        let body = json!({"type": "context_update", "data": {"i": i}});
        let resp = http
            .post(format!(
                "http://{addr}/api/agents/{}/events",
                fixture.fast.0
            ))
            .bearer_auth(&fixture.key)
            .json(&body)
            .send()
            .await
            .expect("emit");
        assert!(resp.status().is_success(), "{}", resp.status());
        assert_eq!(event(&fast.recv().await).1, i);
    }
    assert!(
        online(&http, &addr, &fixture)
            .await
            .contains(&fixture.slow.0),
        "the slow agent was still connected while the other one was served ({:?} in)",
        stopped_reading.elapsed()
    );

    // Then the slow one is let go, on time, as a slow consumer.
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    let mut peak = memory_kib(pid);
    while online(&http, &addr, &fixture)
        .await
        .contains(&fixture.slow.0)
    {
        pace.tick().await;
        peak = peak.max(memory_kib(pid));
        assert!(
            stopped_reading.elapsed() < STALL * 5,
            "the slow agent was never closed"
        );
    }
    let took = stopped_reading.elapsed();
    assert!(
        took < STALL + Duration::from_secs(3),
        "closed after {took:?}"
    );
    assert_eq!(slow.closed().await, close::SLOW_CONSUMER);
    let grown = peak.saturating_sub(baseline);
    assert!(grown < MEMORY_BOUND_KIB, "the node grew by {grown} KiB");
}

/// A tenant with two agents (credentials), an operator key, and the backlog in the
/// slow agent's inbox — written before the node starts, so none of it passed through
/// the node's memory.
struct Fixture {
    tenant: TenantId,
    slow: (AgentId, String, String),
    fast: (AgentId, String, String),
    key: String,
}

impl Fixture {
    async fn new(url: &str) -> Fixture {
        let store = Store::connect(url).await.expect("store");
        store.migrate().await.expect("migrate");
        let tenant = nexus::admin::create_tenant(
            &store,
            &Default::default(),
            &nexus::admin::Actor::Cli,
            "acme",
        )
        .await
        .expect("tenant");
        let specs = ["slow", "fast"].map(|name| nexus::admin::AgentSpec {
            name: name.into(),
            clickup_user: None,
            slack_user: None,
        });
        let agents = nexus::admin::create_agents(
            &store,
            &Default::default(),
            &nexus::admin::Actor::Cli,
            tenant.id,
            Vec::from(specs),
        )
        .await
        .expect("agents");
        let [slow, fast] = [&agents[0], &agents[1]].map(|a| {
            let secret = a.client_secret.clone();
            (a.agent.id, a.agent.client_id.clone(), secret)
        });
        let scopes = "read,write".parse().expect("scopes");
        let key = nexus::admin::create_operator_key(
            &store,
            &nexus::admin::Actor::Cli,
            "test",
            scopes,
            None,
        )
        .await
        .expect("key")
        .secret;
        let data: Arc<str> = json!({"pad": "x".repeat(PAD_BYTES)}).to_string().into();
        let retention = Retention {
            ttl_ms: 86_400_000,
            cap: BACKLOG as u64,
            audit_ttl_ms: 86_400_000,
            session_ttl_ms: None,
        };
        for _ in 0..BACKLOG / 500 {
            let events: Vec<NewInboxEvent> = (0..500)
                .map(|_| NewInboxEvent {
                    agent: slow.0,
                    event_id: EventId::new_v7(),
                    kind: EventType::WakeUp,
                    data: data.clone(),
                    trace_id: None,
                    idempotency_key: None,
                    ttl_ms: retention.ttl_ms,
                })
                .collect();
            store
                .append_inbox(&events, retention)
                .await
                .expect("append");
        }
        store.close().await;
        Fixture {
            tenant: tenant.id,
            slow,
            fast,
            key,
        }
    }
}

async fn token(http: &reqwest::Client, addr: &str, agent: &(AgentId, String, String)) -> String {
    let resp = request_token(http, addr, &agent.1, &agent.2).await;
    let body: Value = resp.json().await.expect("token json");
    body["access_token"].as_str().expect("token").to_owned()
}

/// The agent ids the node lists online in the tenant.
async fn online(http: &reqwest::Client, addr: &str, f: &Fixture) -> Vec<AgentId> {
    let url = format!("http://{addr}/api/tenants/{}/agents/online", f.tenant);
    let body: Value = http
        .get(url)
        .bearer_auth(&f.key)
        .send()
        .await
        .expect("online")
        .json()
        .await
        .expect("json");
    body["agents"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .filter_map(|a| a["agent_id"].as_str()?.parse().ok())
        .collect()
}

/// The resident memory of process `pid` (`VmRSS` in `/proc/PID/status`), in KiB.
fn memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}
