//! Tenant tiers and their quotas: agents per tenant (403), concurrent sockets (close
//! 4029), events per second (429 + `Retry-After`), webhooks per second per source (429),
//! inbox retention; each refusal counted in `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use nexus::config::Tiers;
use nexus::presence::PresenceChange;
use nexus_proto::{TenantId, close};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::{json_lines, nexus, one};
use crate::cluster::Cluster;
use crate::helpers::{Profile, TestApp, TestDb};
use crate::operator_api::call;
use crate::probes::scrape;
use crate::webhook_support::{SLACK_SECRET, now_s, slack_event, slack_signature};
use crate::{both_profiles, cluster_profile};

both_profiles!(
    a_tier_caps_the_agents_of_a_tenant,
    a_tier_caps_concurrent_sockets_with_4029,
    emits_over_the_tier_rate_get_429_with_retry_after,
    webhooks_over_a_source_rate_get_429_and_other_sources_go_on,
    the_tier_sets_how_long_events_wait_in_an_inbox,
    the_cli_reads_the_tiers_file_and_keeps_its_limits,
);

cluster_profile!(the_socket_cap_holds_across_the_nodes_of_a_cluster);

/// `tiny`, the default, is small enough to reach in a test; `roomy` has no limits.
const TIERS: &str = r#"
default = "tiny"
[tiers.tiny]
agents = 2
sockets = 1
events_per_second = 1
events_burst = 2
webhooks_per_second = 1
webhooks_burst = 2
inbox_retention = "1h"
[tiers.roomy]
"#;

async fn spawn(p: Profile) -> TestApp {
    TestApp::spawn_with(p, |c| {
        c.tiers = Arc::new(Tiers::parse(TIERS).expect("tiers"));
        // Agent creation hashes secrets (argon2): slow on a busy machine.
        c.serve.db.request_timeout = Duration::from_secs(30);
    })
    .await
}

/// The `nexus_quota_refusals_total` count of `tenant` for `quota`.
async fn refusals(app: &TestApp, tenant: TenantId, quota: &str) -> u64 {
    let page = scrape(app).await;
    let (t, q) = (format!("tenant=\"{tenant}\""), format!("quota=\"{quota}\""));
    page.lines()
        .filter(|l| {
            l.starts_with("nexus_quota_refusals_total{") && l.contains(&t) && l.contains(&q)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn a_tier_caps_the_agents_of_a_tenant(p: Profile) {
    let app = spawn(p).await;
    let admin = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await;
    assert_eq!(
        t.tier, "tiny",
        "a new tenant gets the configured default tier"
    );
    let agents = format!("/api/tenants/{}/agents", t.id);
    let tenant = format!("/api/tenants/{}", t.id);
    let create = |name: &str| {
        let body = json!({ "name": name });
        let (app, agents, admin) = (&app, &agents, &admin);
        async move { call(app, Method::POST, agents, admin, Some(body)).await.0 }
    };
    let retier = |tier: &str| {
        let body = json!({ "tier": tier });
        let (app, tenant, admin) = (&app, &tenant, &admin);
        async move { call(app, Method::PATCH, tenant, admin, Some(body)).await }
    };
    let status = create("a").await;
    assert_eq!(status, StatusCode::CREATED);
    // Two more would make three: none is made.
    let many = json!({"count": 2, "name_prefix": "w-"});
    let (status, refused) = call(&app, Method::POST, &agents, &admin, Some(many)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "quota_exceeded");
    assert_eq!(
        refused["error"]["details"],
        json!({"quota": "agents", "tier": "tiny", "limit": 2})
    );
    let (_, listed) = call(&app, Method::GET, &agents, &admin, None).await;
    assert_eq!(listed["agents"].as_array().map(Vec::len), Some(1));
    let status = create("b").await;
    assert_eq!(status, StatusCode::CREATED);
    let status = create("c").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(refusals(&app, t.id, "agents").await, 2);

    // Only a configured tier is accepted; a larger one lifts the cap at once.
    let (status, bad) = retier("gold").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let why = bad["error"]["details"]["fields"]["tier"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("roomy, tiny"), "{why}");
    let (status, _) = retier("roomy").await;
    assert_eq!(status, StatusCode::OK);
    let status = create("c").await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, tiers) = call(&app, Method::GET, "/api/tiers", &admin, None).await;
    assert_eq!(tiers["default"], "tiny");
    assert_eq!(tiers["tiers"][1]["name"], "tiny");
    assert_eq!(
        tiers["tiers"][1]["events"],
        json!({"per_second": 1, "burst": 2})
    );
}

async fn a_tier_caps_concurrent_sockets_with_4029(p: Profile) {
    let app = spawn(p).await;
    let t = app.tenant("acme").await;
    let (a, b) = (app.agent(t.id, "a").await, app.agent(t.id, "b").await);
    let mut changes = app.state.hub.presence().subscribe();
    let mut first = app.online(&a, t.id).await;
    let mut refused = app
        .connect(&app.token_for(b.agent.id, t.id), "")
        .await
        .expect("upgraded");
    assert_eq!(refused.closed().await, close::QUOTA_EXCEEDED);
    assert_eq!(refusals(&app, t.id, "sockets").await, 1);
    // The agent holding the place may reconnect: its new session replaces the old.
    let mut again = app.online(&a, t.id).await;
    assert_eq!(first.closed().await, close::SUPERSEDED);
    // Once it leaves, the place is free for another agent. (The superseded session may
    // have sent an Offline of its own already: wait until the agent is really gone.)
    again.ws.close(None).await.expect("close");
    loop {
        let change = changes.recv().await.expect("presence changes");
        if matches!(change, PresenceChange::Offline { agent_id, .. } if agent_id == a.agent.id)
            && app
                .state
                .hub
                .online_agents(t.id)
                .await
                .expect("online")
                .is_empty()
        {
            break;
        }
    }
    let mut b_ws = app.online(&b, t.id).await;
    b_ws.ws.close(None).await.expect("close");
}

/// The `Retry-After` header, in seconds.
fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    let value = resp.headers().get("retry-after")?;
    value.to_str().ok()?.parse().ok()
}

/// `POST path` with `key`: status, `Retry-After` and body.
async fn post(
    app: &TestApp,
    path: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Option<u64>, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("send");
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (
        resp.status(),
        retry,
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn emits_over_the_tier_rate_get_429_with_retry_after(p: Profile) {
    let app = spawn(p).await;
    let key = app.operator_key("write", None).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "a").await;
    let to_agent = format!("/api/agents/{}/events", a.agent.id);
    let event = json!({"type": "wake_up", "data": {"text": "hi"}});
    // A burst of 2 at 1/s: the first two go through; a third within the second does not.
    // More attempts than that only guard against a stalled machine refilling the bucket.
    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..6 {
        let (status, retry, body) = post(&app, &to_agent, &key, event.clone()).await;
        statuses.push(status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            refusal = Some((retry, body));
            break;
        }
    }
    assert_eq!(&statuses[..2], [StatusCode::ACCEPTED; 2]);
    let (retry, body) = refusal.expect("refused within six emits");
    assert_eq!(retry, Some(1), "Retry-After names the wait in seconds");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(body["error"]["details"]["quota"], "events");
    // A tenant-wide emit draws on the same bucket.
    let (status, _, _) = post(
        &app,
        &format!("/api/tenants/{}/events", t.id),
        &key,
        event.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refusals(&app, t.id, "events").await >= 2);
    // Refused emits stored nothing: the inbox holds only what was accepted.
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    let inbox = app
        .get_json(&format!("/api/agents/{}/inbox", a.agent.id), &key)
        .await;
    assert_eq!(
        inbox["events"].as_array().map(Vec::len),
        Some(accepted),
        "{inbox}"
    );

    // Another tenant, on a tier without a rate, is not held back.
    let other = app.tenant("other").await;
    let admin = app.operator_key("admin", None).await;
    let patch = json!({"tier": "roomy"});
    let (status, _) = call(
        &app,
        Method::PATCH,
        &format!("/api/tenants/{}", other.id),
        &admin,
        Some(patch),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let b = app.agent(other.id, "b").await;
    for _ in 0..6 {
        let (status, _, _) = post(
            &app,
            &format!("/api/agents/{}/events", b.agent.id),
            &key,
            event.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
}

/// A Slack delivery on `path`: status and `Retry-After`.
async fn slack(app: &TestApp, path: &str, event_id: &str, team: &str) -> (StatusCode, Option<u64>) {
    let (body, ts) = (slack_event(event_id, team), now_s());
    let resp = app
        .http
        .post(app.url(path))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", ts.to_string())
        .header(
            "x-slack-signature",
            slack_signature(SLACK_SECRET, ts, &body),
        )
        .body(body)
        .send()
        .await
        .expect("send");
    (resp.status(), retry_after(&resp))
}

async fn webhooks_over_a_source_rate_get_429_and_other_sources_go_on(p: Profile) {
    let app = spawn(p).await;
    let t = app.tenant("acme").await;
    let busy = app.slack_source(t.id, "T001").await;
    let quiet = app.slack_source(t.id, "T002").await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..6 {
        let (status, retry) = slack(&app, &busy.url_path, &format!("Ev{i}"), "T001").await;
        statuses.push(status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = retry;
            break;
        }
    }
    assert_eq!(&statuses[..2], [StatusCode::OK; 2]);
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(retry_after, Some(1));
    // Nothing was stored for the refused delivery: the sender retries it.
    assert_eq!(app.job_count().await, statuses.len() - 1);
    // The limit is per source: the tenant's other source is not held back.
    let (status, _) = slack(&app, &quiet.url_path, "EvQ", "T002").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(refusals(&app, t.id, "webhooks").await, 1);
}

async fn the_tier_sets_how_long_events_wait_in_an_inbox(p: Profile) {
    let app = spawn(p).await;
    let key = app.operator_key("admin", None).await;
    let tiny = app.tenant("tiny").await;
    let roomy = app.tenant("roomy").await;
    let patch = json!({"tier": "roomy"});
    let (status, _) = call(
        &app,
        Method::PATCH,
        &format!("/api/tenants/{}", roomy.id),
        &key,
        Some(patch),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (a, b) = (
        app.agent(tiny.id, "a").await,
        app.agent(roomy.id, "b").await,
    );
    let event = json!({"type": "wake_up", "data": {"text": "hi"}});
    for agent in [&a, &b] {
        let path = format!("/api/agents/{}/events", agent.agent.id);
        let (status, _, _) = post(&app, &path, &key, event.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    // Two hours on: past tiny's hour, within the default week of `--inbox-ttl`.
    let later = nexus::time::now_ms() + 2 * 3_600_000;
    let swept = app
        .state
        .store
        .delete_expired_inbox(later, 1_000)
        .await
        .expect("sweep");
    assert_eq!(swept, 1);
    let held = |agent: &nexus::admin::AgentWithSecret| {
        let path = format!("/api/agents/{}/inbox", agent.agent.id);
        let (app, key) = (&app, &key);
        async move {
            app.get_json(&path, key).await["events"]
                .as_array()
                .map(Vec::len)
        }
    };
    assert_eq!(held(&a).await, Some(0), "tiny keeps an event an hour");
    assert_eq!(held(&b).await, Some(1), "roomy keeps it --inbox-ttl");
}

async fn the_socket_cap_holds_across_the_nodes_of_a_cluster() {
    let cluster = Cluster::start_with(2, |_, c| {
        c.tiers = Arc::new(Tiers::parse(TIERS).expect("tiers"));
    })
    .await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let t = n0.tenant("acme").await;
    let (a, b) = (n0.agent(t.id, "a").await, n0.agent(t.id, "b").await);
    let _held = n0.online(&a, t.id).await;
    // Node 1 has no socket of the tenant itself: the count it checks is Redis's.
    let mut refused = n1
        .connect(&n1.token_for(b.agent.id, t.id), "")
        .await
        .expect("upgraded");
    assert_eq!(refused.closed().await, close::QUOTA_EXCEEDED);
    // The agent holding the place moves to node 1: allowed, and node 0's session goes.
    let _moved = n1.online(&a, t.id).await;
}

async fn the_cli_reads_the_tiers_file_and_keeps_its_limits(p: Profile) {
    let db = TestDb::new(p).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("tiers.toml");
    std::fs::write(&file, TIERS).expect("write");
    let file = file.to_str().expect("path");
    let with_tiers = |args: &[&str]| {
        let mut all = vec!["--tiers", file];
        all.extend_from_slice(args);
        nexus(&db, &all)
    };
    let listed = json_lines(&with_tiers(&["tenant", "tiers"]));
    let names: Vec<&str> = listed.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["roomy", "tiny"]);
    let tenant = one(&with_tiers(&["tenant", "create", "--name", "acme"]));
    assert_eq!(tenant["tier"], "tiny");
    let id = tenant["id"].as_str().expect("id");
    let create = [
        "agent",
        "create",
        "--tenant",
        id,
        "--name-prefix",
        "w-",
        "--count",
        "3",
    ];
    let refused = with_tiers(&create);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("allows 2 agents per tenant"), "{stderr}");
    let unknown = with_tiers(&["tenant", "update", id, "--tier", "gold"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("roomy, tiny"));
    assert_eq!(
        one(&with_tiers(&["tenant", "update", id, "--tier", "roomy"]))["tier"],
        "roomy"
    );
    assert_eq!(json_lines(&with_tiers(&create)).len(), 3);
    // Without the file, the built-in tiers: `tiny` is not one of them.
    let builtin = json_lines(&nexus(&db, &["tenant", "tiers"]));
    assert_eq!(builtin.len(), 3);
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "default = \"x\"\n").expect("write");
    let refused = nexus(
        &db,
        &["--tiers", broken.to_str().expect("path"), "tenant", "tiers"],
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("tiers file is not valid"));
}
