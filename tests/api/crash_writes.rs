//! Real node processes killed with SIGKILL after Slack answered a post and before the
//! node recorded it (the recording is held back by a lock the test takes, so the moment
//! is exact): after a restart there is one Slack message, one answer to the agent, and
//! the job is done — not dead, not posted twice.

use std::time::Duration;

use nexus::admin::{AgentSpec, AgentWithSecret, MappingSpec, SourceSpec};
use nexus::store::SourceKind;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::process::Child;

use crate::agent_client::{Agent, connect_at, event};
use crate::both_profiles;
use crate::crash::spawn_serve;
use crate::fake_providers::{CLICKUP_TOKEN, FakeProviders, SLACK_BOT_TOKEN, task_json};
use crate::helpers::{Profile, TestApp, TestDb, request_token};
use crate::webhook_support::{CLICKUP_SECRET, SLACK_SECRET, hmac_hex};

both_profiles!(
    a_tool_post_answered_before_a_sigkill_is_posted_once,
    a_thread_answered_before_a_sigkill_is_opened_once,
);

const POST: &str = "/slack/chat.postMessage";
const JWT_SECRET: &str = "crash-writes-jwt-secret-0123456789abcdef";
/// A guard against hangs, not a synchronisation device.
const PATIENCE: Duration = Duration::from_secs(20);

/// A tenant with Slack and ClickUp sources on the fake providers, list L1 mapped to
/// channel C1, and agent alice (ClickUp user 111), in a database no node runs on yet.
struct World {
    db: TestDb,
    fake: FakeProviders,
    alice: AgentWithSecret,
    /// An operator key that reads everything.
    reader: String,
    http: reqwest::Client,
}

async fn world(p: Profile) -> World {
    let fake = FakeProviders::start().await;
    let app = TestApp::spawn(p).await;
    let store = &app.state.store;
    let tenant = app.tenant("acme").await.id;
    let alice = AgentSpec {
        name: "alice".into(),
        clickup_user: Some("111".parse().expect("user")),
        slack_user: None,
    };
    let alice = nexus::admin::create_agents(
        store,
        &Default::default(),
        &nexus::admin::Actor::Cli,
        tenant,
        vec![alice],
    )
    .await
    .expect("agent")
    .pop()
    .expect("alice");
    for (kind, external, secret, token, bot) in [
        (
            SourceKind::Slack,
            "T001",
            SLACK_SECRET,
            SLACK_BOT_TOKEN,
            "UNEXUS",
        ),
        (
            SourceKind::Clickup,
            "wh-1",
            CLICKUP_SECRET,
            CLICKUP_TOKEN,
            "999",
        ),
    ] {
        let spec = SourceSpec {
            tenant,
            kind,
            external_id: Some(external.into()),
            secret: Some(secret.into()),
            api_token: Some(token.into()),
            bot_user: Some(bot.into()),
            to_agent: None,
            to_alias: None,
            event: None,
        };
        nexus::admin::add_source(store, &nexus::admin::Actor::Cli, spec)
            .await
            .expect("source");
    }
    let mapping = MappingSpec {
        tenant,
        clickup_list: "L1".parse().expect("list"),
        slack_channel: "C1".parse().expect("channel"),
        default_agents: vec![],
        open_threads: true,
    };
    nexus::admin::add_mapping(store, &nexus::admin::Actor::Cli, mapping)
        .await
        .expect("mapping");
    let reader = app.operator_key("read", None).await;
    World {
        db: app.stop().await,
        fake,
        alice,
        reader,
        http: reqwest::Client::new(),
    }
}

impl World {
    /// `nexus serve` on the world's database and fake providers, with a 1 s lease so a
    /// restarted node takes back the dead node's job at once.
    async fn node(&self) -> (Child, String) {
        let (slack, clickup) = (self.fake.slack_url(), self.fake.clickup_url());
        let env = [
            ("NEXUS_SLACK_API_URL", slack.as_str()),
            ("NEXUS_CLICKUP_API_URL", clickup.as_str()),
            ("NEXUS_QUEUE_LEASE", "1s"),
            ("NEXUS_QUEUE_BACKOFF_BASE", "50ms"),
            ("NEXUS_QUEUE_BACKOFF_MAX", "200ms"),
            ("NEXUS_JWT_SECRET", JWT_SECRET),
        ];
        spawn_serve(&self.db.url, &env).await
    }

    async fn alice_on(&self, addr: &str) -> Agent {
        let (id, secret) = (&self.alice.agent.client_id, &self.alice.client_secret);
        let token: Value = request_token(&self.http, addr, id, secret)
            .await
            .json()
            .await
            .expect("token");
        let token = token["access_token"].as_str().expect("access_token");
        let mut agent = connect_at(addr, Some(token), "", &[])
            .await
            .expect("connects");
        agent.welcome().await;
        agent
    }

    async fn get(&self, addr: &str, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("http://{addr}{path}"))
            .bearer_auth(&self.reader)
            .send()
            .await
            .expect("send");
        resp.json().await.expect("json")
    }

    /// Alice's inbox as (type, data).
    async fn inbox(&self, addr: &str) -> Vec<(String, Value)> {
        let page = self
            .get(addr, &format!("/api/agents/{}/inbox", self.alice.agent.id))
            .await;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        events
            .into_iter()
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or_default().to_owned(),
                    e["data"].clone(),
                )
            })
            .collect()
    }

    /// The job once it is done or dead.
    async fn settled_job(&self, addr: &str, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let job = self.get(addr, &format!("/api/jobs/{id}")).await;
            if job["status"] == "done" || job["status"] == "dead" {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job never settled: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Lets Slack answer the held post while the node cannot record it, waits until the
    /// post exists (on PostgreSQL: until the node is waiting to record it), and kills
    /// the node with SIGKILL.
    async fn kill_between_answer_and_record(&self, mut node: Child) {
        wait_for(
            || self.fake.requests_to(POST).len() == 1,
            "the post reaches Slack",
        )
        .await;
        // The intent is committed before Slack is called: block what comes after.
        let block = Blocker::take(&self.db.url).await;
        self.fake.release(POST);
        wait_for(|| self.fake.slack_messages().len() == 1, "Slack posts it").await;
        block.until_the_node_waits().await;
        node.start_kill().expect("SIGKILL");
        node.wait().await.expect("wait");
        drop(block);
    }
}

/// A lock that keeps the node from recording a write's result: SQLite's write lock, or
/// PostgreSQL's lock on `side_effects`. Released when dropped.
struct Blocker {
    /// The connection holding the lock.
    _held: Box<dyn std::any::Any + Send>,
    postgres: bool,
}

impl Blocker {
    async fn take(url: &str) -> Blocker {
        if url.starts_with("sqlite") {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut c)
                .await
                .expect("lock");
            Blocker {
                _held: Box::new(c),
                postgres: false,
            }
        } else {
            let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query("BEGIN").execute(&mut c).await.expect("begin");
            sqlx::query("LOCK TABLE side_effects IN ACCESS EXCLUSIVE MODE")
                .execute(&mut c)
                .await
                .expect("lock");
            Blocker {
                _held: Box::new(c),
                postgres: true,
            }
        }
    }

    /// On PostgreSQL, until the node's statement recording the post waits on the lock:
    /// the node has Slack's answer. (SQLite shows no waiters; the post exists, unrecorded.)
    async fn until_the_node_waits(&self) {
        if !self.postgres {
            return;
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let url = crate::helpers::service_url("NEXUS_TEST_DATABASE_URL");
        let mut watcher = sqlx::PgConnection::connect(&url).await.expect("connect");
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE 'UPDATE side_effects SET state = ''done''%'",
            )
            .fetch_one(&mut watcher)
            .await
            .expect("pg_stat_activity");
            if waiting > 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the node never recorded the post"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn wait_for(done: impl Fn() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_tool_post_answered_before_a_sigkill_is_posted_once(p: Profile) {
    let w = world(p).await;
    w.fake.hold(POST);
    let (node, addr) = w.node().await;
    let mut alice = w.alice_on(&addr).await;
    let args = json!({"channel": "C1", "text": "hello"});
    let data = json!({"request_id": "r1", "tool": "slack.post_message", "args": args, "timeout_ms": 120_000});
    alice
        .send(json!({"type": "tool_request", "data": data}))
        .await;
    w.kill_between_answer_and_record(node).await;

    let (_node, addr) = w.node().await;
    let mut alice = w.alice_on(&addr).await;
    let (kind, _, _, result) = event(&alice.recv().await);
    let message = &w.fake.slack_messages()[0];
    assert_eq!(kind, "tool_result");
    assert_eq!(
        result,
        json!({"request_id": "r1", "ok": true, "result": {"channel": "C1", "ts": message["ts"]}}),
        "the answer names the message the killed node posted"
    );
    assert_eq!(w.fake.requests_to(POST).len(), 1, "posted once");
    assert_eq!(w.fake.slack_messages().len(), 1);
    let kinds: Vec<String> = w.inbox(&addr).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["tool_result"], "one answer");
}

async fn a_thread_answered_before_a_sigkill_is_opened_once(p: Profile) {
    let w = world(p).await;
    w.fake
        .put_task(task_json("T1", "Fix login", "in progress", "L1", &[111]));
    w.fake.hold(POST);
    let (node, addr) = w.node().await;
    let body = json!({"event": "taskCreated", "task_id": "T1", "webhook_id": "wh-1",
                      "history_items": [{"id": "h1", "type": 1, "date": "1700000000000",
                                         "user": {"id": 183, "username": "user183"}}]})
    .to_string();
    let resp = w
        .http
        .post(format!("http://{addr}/webhooks/clickup"))
        .header("content-type", "application/json")
        .header("x-signature", hmac_hex(CLICKUP_SECRET, body.as_bytes()))
        .body(body)
        .send()
        .await
        .expect("send");
    assert!(resp.status().is_success());
    let accepted: Value = resp.json().await.expect("json");
    let job_id = accepted["job_id"].as_str().expect("job_id").to_owned();
    w.kill_between_answer_and_record(node).await;

    let (_node, addr) = w.node().await;
    let job = w.settled_job(&addr, &job_id).await;
    assert_eq!(job["status"], "done", "answered 200, so processed: {job}");
    assert_eq!(w.fake.requests_to(POST).len(), 1, "one thread-opening post");
    let thread = w.fake.slack_messages()[0]["ts"].clone();
    let inbox = w.inbox(&addr).await;
    let kinds: Vec<&str> = inbox.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["task_assigned"], "one task_assigned");
    assert_eq!(inbox[0].1["mapping"]["slack_thread_ts"], thread);
}
