//! Two nodes on one PostgreSQL database: each node's inbox writer and ack writer lock
//! the same `agent_cursors` rows. Emits must never fail on the contention between them
//! (a deadlock used to surface as a 500), and every agent still gets all its events,
//! in order.

use std::sync::Arc;
use std::time::Duration;

use nexus::config::Config;
use nexus::store::NewAgent;
use nexus_proto::{AgentId, TenantId};
use reqwest::StatusCode;
use serde_json::json;

use crate::agent_client::{Agent, event};
use crate::helpers::{Profile, TestApp, TestDb};
use crate::postgres_profile;

postgres_profile!(
    two_nodes_emitting_and_acking_the_same_agents_never_fail,
    an_emit_chosen_as_deadlock_victim_is_retried,
);

const AGENTS: usize = 20;
/// Rounds of emits: each sends one event to every agent, half through each node, and
/// one tenant-wide event (a single request appending to every agent at once).
const ROUNDS: u64 = 60;
/// `n` of the tenant-wide events starts here, clear of the per-agent ones.
const FAN_OUT_BASE: u64 = 1_000;
/// POSTs in flight at once, across both nodes.
const IN_FLIGHT: usize = 16;
/// A guard against hangs, not a synchronisation device.
const PATIENCE: Duration = Duration::from_secs(15);

/// Acks go out once per event: lift the per-socket frame limit out of the way.
fn tweak(c: &mut Config) {
    c.serve.ws.inbound_rate = 100_000;
}

/// What one POST emits: to one agent, or to the whole tenant.
#[derive(Debug, Clone, Copy)]
enum Target {
    Agent(AgentId),
    Tenant(TenantId),
}

async fn post_event(node: &TestApp, key: &str, target: Target, n: u64) -> StatusCode {
    let path = match target {
        Target::Agent(id) => format!("/api/agents/{id}/events"),
        Target::Tenant(id) => format!("/api/tenants/{id}/events"),
    };
    node.http
        .post(node.url(&path))
        .bearer_auth(key)
        .json(&json!({"type": "wake_up", "data": {"n": n}}))
        .send()
        .await
        .expect("send")
        .status()
}

/// Reads events up to seq `last`, checking each is the next seq, and acks each one;
/// returns the `n`s received.
async fn read_and_ack(mut agent: Agent, last: u64) -> Vec<u64> {
    let mut ns = Vec::new();
    for expected in 1..=last {
        let (_, seq, _, data) = event(&agent.recv().await);
        assert_eq!(seq, expected, "seqs arrive one by one, nothing missing");
        ns.push(data["n"].as_u64().expect("n"));
        agent
            .send(json!({"type": "ack", "data": {"seq": seq}}))
            .await;
    }
    ns
}

async fn two_nodes_emitting_and_acking_the_same_agents_never_fail() {
    let db = TestDb::new(Profile::Postgres).await;
    let url = db.url.clone();
    let nodes = [
        Arc::new(TestApp::spawn_on(db, tweak).await),
        Arc::new(TestApp::spawn_on(TestDb::shared(&url), tweak).await),
    ];
    let t = nodes[0].tenant("acme").await;
    let key = Arc::new(nodes[0].operator_key("read,write", None).await);
    let ids = agents_without_secrets(&nodes[0], t.id, AGENTS).await;

    // Half the agents on each node, acking everything they receive.
    let total = 2 * ROUNDS + 1;
    let mut readers = Vec::with_capacity(AGENTS);
    for (i, id) in ids.iter().enumerate() {
        let node = &nodes[i % 2];
        let mut ws = node
            .connect(&node.token_for(*id, t.id), "")
            .await
            .expect("connects");
        ws.welcome().await;
        readers.push(tokio::spawn(read_and_ack(ws, total)));
    }

    // Every agent's events go through both nodes, and consecutive requests name
    // different agents, so each node's append batches span many agents' rows.
    let mut jobs: Vec<(usize, Target, u64)> = Vec::new();
    for n in 0..ROUNDS {
        for (i, id) in ids.iter().enumerate() {
            jobs.push(((i + n as usize) % 2, Target::Agent(*id), n));
        }
        jobs.push((n as usize % 2, Target::Tenant(t.id), FAN_OUT_BASE + n));
    }
    let jobs = Arc::new(jobs);
    let mut workers = Vec::with_capacity(IN_FLIGHT);
    for w in 0..IN_FLIGHT {
        let (nodes, key, jobs) = (nodes.clone(), key.clone(), jobs.clone());
        workers.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            for (node, target, n) in jobs.iter().skip(w).step_by(IN_FLIGHT) {
                let status = post_event(&nodes[*node], &key, *target, *n).await;
                if status != StatusCode::ACCEPTED {
                    failed.push((status, *target));
                }
            }
            failed
        }));
    }
    let mut failed = Vec::new();
    for w in workers {
        failed.extend(w.await.expect("worker"));
    }
    assert!(
        failed.is_empty(),
        "{} of {} emits failed: {failed:?}",
        failed.len(),
        jobs.len()
    );

    // A node pushes only what it appended itself; one last event through the agent's
    // own node makes its session fill in the rest from the inbox.
    for (i, id) in ids.iter().enumerate() {
        let status = post_event(&nodes[i % 2], &key, Target::Agent(*id), ROUNDS).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let mut expected: Vec<u64> = (0..=ROUNDS).collect();
    expected.extend((0..ROUNDS).map(|n| FAN_OUT_BASE + n));
    for (i, r) in readers.into_iter().enumerate() {
        let mut ns = r.await.expect("reader");
        ns.sort_unstable();
        assert_eq!(ns, expected, "agent {i}");
    }

    // Every last ack reaches the database, whichever transaction lost a lock race.
    for id in &ids {
        let saved = tokio::time::timeout(PATIENCE, async {
            while nodes[0].cursor(*id, &key).await.acked_seq < total {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(saved.is_ok(), "agent {id}: the last ack was not saved");
    }

    // The second node stops first: the first owns the schema and drops it.
    let [first, second] = nodes;
    for node in [second, first] {
        let Ok(node) = Arc::try_unwrap(node) else {
            panic!("a node is still shared");
        };
        node.stop().await;
    }
}

/// A deadlock made on purpose: another transaction holds an agent's cursor row while
/// an emit to that agent, holding its tenant's row FOR SHARE (against tenant-wide
/// appends), waits for it; then the other transaction asks to update the tenant row.
/// The emit waited longer, so PostgreSQL aborts it; it must be run again, not answered
/// with a 500.
async fn an_emit_chosen_as_deadlock_victim_is_retried() {
    let app = TestApp::spawn(Profile::Postgres).await;
    let t = app.tenant("acme").await;
    let key = app.operator_key("write", None).await;
    let ids = agents_without_secrets(&app, t.id, 1).await;
    let agent = ids[0];
    assert_eq!(
        post_event(&app, &key, Target::Agent(agent), 0).await,
        StatusCode::ACCEPTED
    );

    let pool = sqlx::PgPool::connect(&app.db.url).await.expect("connect");
    let mut other = pool.begin().await.expect("begin");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *other)
        .await
        .expect("pid");
    sqlx::query("SELECT 1 FROM agent_cursors WHERE agent_id = $1 FOR UPDATE")
        .bind(*agent.as_uuid())
        .execute(&mut *other)
        .await
        .expect("lock the cursor");
    let emit = {
        let (http, url, key) = (
            app.http.clone(),
            app.url(&format!("/api/agents/{agent}/events")),
            key.clone(),
        );
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"type": "wake_up", "data": {"n": 1}}))
                .send()
                .await
                .expect("send")
                .status()
        })
    };
    // The emit holds the tenant row once it waits on ours.
    let waiting = tokio::time::timeout(PATIENCE, async {
        loop {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
            )
            .bind(pid)
            .fetch_one(&pool)
            .await
            .expect("blocked");
            if n > 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waiting.is_ok(), "the emit never waited on the held row");
    // Closes the cycle; returns once PostgreSQL has aborted the emit.
    sqlx::query("UPDATE tenants SET log_head = log_head WHERE id = $1")
        .bind(*t.id.as_uuid())
        .execute(&mut *other)
        .await
        .expect("update the tenant");
    other.commit().await.expect("commit");

    assert_eq!(emit.await.expect("emit"), StatusCode::ACCEPTED);
    let reader = app.operator_key("read", None).await;
    assert_eq!(
        app.cursor(agent, &reader).await.last_seq,
        2,
        "the retried emit appended once"
    );
    pool.close().await;
}

/// `n` agents written straight into the store: these tests never use their secrets, and
/// hashing twenty with argon2 in a debug build took most of the test's time.
async fn agents_without_secrets(app: &TestApp, tenant: TenantId, n: usize) -> Vec<AgentId> {
    let new = (0..n)
        .map(|i| NewAgent {
            tenant_id: tenant,
            name: format!("bot-{i}"),
            client_id: format!("client-{i}"),
            client_secret_hash: String::new(),
            clickup_user: None,
            slack_user: None,
        })
        .collect();
    app.state
        .store
        .create_agents(new, None)
        .await
        .expect("agents")
        .into_iter()
        .map(|a| a.id)
        .collect()
}
