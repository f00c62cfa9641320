//! The mirror end to end: signed ClickUp and Slack webhooks in, agent events out, agent
//! tool requests out to fake Slack and ClickUp servers that check every request. The
//! fixture is here; the tests are in `clickup`, `slack`, `tools` and `tool_scope`.

use std::time::Duration;

use nexus::admin::{AgentSpec, AgentWithSecret, MappingSpec, SourceSpec};
use nexus::config::Config;
use nexus::queue::JobOutcome;
use nexus::store::{JobStatus, SourceKind};
use nexus_proto::TenantId;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::agent_client::{Agent, event};
use crate::fake_providers::{CLICKUP_TOKEN, FakeProviders, SLACK_BOT_TOKEN, task_json};
use crate::helpers::{Profile, TestApp};
use crate::webhook_support::{CLICKUP_SECRET, SLACK_SECRET, hmac_hex, now_s};

mod clickup;
mod effects;
mod leases;
mod mcp;
mod slack;
mod tool_scope;
mod tools;

/// Nexus's own users in ClickUp and Slack: its changes come back as webhooks.
const NEXUS_CLICKUP_USER: &str = "999";
const NEXUS_SLACK_USER: &str = "UNEXUS";
const TEAM: &str = "T001";
const WEBHOOK: &str = "wh-1";

struct Mirror {
    app: TestApp,
    fake: FakeProviders,
    tenant: TenantId,
    /// ClickUp user 111, Slack user UALICE.
    alice: AgentWithSecret,
    /// Members of `@AI_Squad`; carol is also the mapping's default agent.
    bob: AgentWithSecret,
    carol: AgentWithSecret,
    outcomes: broadcast::Receiver<JobOutcome>,
    /// An operator key that reads every tenant.
    reader: String,
}

async fn setup(p: Profile) -> Mirror {
    setup_with(p, true, |_| {}).await
}

/// A tenant with Slack and ClickUp sources (`tokens`: with API tokens), list L1 mapped
/// to channel C1, three agents and an alias; `tweak` adjusts the node's configuration.
async fn setup_with(p: Profile, tokens: bool, tweak: impl FnOnce(&mut Config)) -> Mirror {
    let fake = FakeProviders::start().await;
    let (slack_url, clickup_url) = (fake.slack_url(), fake.clickup_url());
    let app = TestApp::spawn_with(p, |c| {
        c.serve.providers.slack_api_url = slack_url;
        c.serve.providers.clickup_api_url = clickup_url;
        c.serve.queue.backoff_base = Duration::from_millis(20);
        c.serve.queue.backoff_max = Duration::from_millis(100);
        tweak(c);
    })
    .await;
    let store = &app.state.store;
    let tenant = app.tenant("acme").await.id;
    let spec = |name: &str, clickup: Option<&str>, slack: Option<&str>| AgentSpec {
        name: name.into(),
        clickup_user: clickup.map(|u| u.parse().expect("ClickUp user")),
        slack_user: slack.map(|u| u.parse().expect("Slack user")),
    };
    let mut agents = nexus::admin::create_agents(
        store,
        &Default::default(),
        &nexus::admin::Actor::Cli,
        tenant,
        vec![
            spec("alice", Some("111"), Some("UALICE")),
            spec("bob", None, None),
            spec("carol", None, None),
        ],
    )
    .await
    .expect("agents");
    let carol = agents.pop().expect("carol");
    let bob = agents.pop().expect("bob");
    let alice = agents.pop().expect("alice");
    for (kind, external, secret, token, bot) in [
        (
            SourceKind::Slack,
            TEAM,
            SLACK_SECRET,
            SLACK_BOT_TOKEN,
            NEXUS_SLACK_USER,
        ),
        (
            SourceKind::Clickup,
            WEBHOOK,
            CLICKUP_SECRET,
            CLICKUP_TOKEN,
            NEXUS_CLICKUP_USER,
        ),
    ] {
        nexus::admin::add_source(
            store,
            &nexus::admin::Actor::Cli,
            SourceSpec {
                tenant,
                kind,
                external_id: Some(external.into()),
                secret: Some(secret.into()),
                api_token: tokens.then(|| token.into()),
                bot_user: Some(bot.into()),
                to_agent: None,
                to_alias: None,
                event: None,
            },
        )
        .await
        .expect("source");
    }
    nexus::admin::add_mapping(
        store,
        &nexus::admin::Actor::Cli,
        MappingSpec {
            tenant,
            clickup_list: "L1".parse().expect("list"),
            slack_channel: "C1".parse().expect("channel"),
            default_agents: vec![carol.agent.id],
            open_threads: true,
        },
    )
    .await
    .expect("mapping");
    nexus::admin::add_alias(
        store,
        &nexus::admin::Actor::Cli,
        tenant,
        "@AI_Squad",
        &[bob.agent.id, carol.agent.id],
    )
    .await
    .expect("alias");
    let outcomes = app.state.queue.subscribe();
    let reader = app.operator_key("read", None).await;
    Mirror {
        app,
        fake,
        tenant,
        alice,
        bob,
        carol,
        outcomes,
        reader,
    }
}

impl Mirror {
    /// Posts a signed ClickUp webhook and waits until its job has finished.
    async fn clickup(&mut self, event: &str, task: &str, history: Value) -> JobOutcome {
        let body = json!({"event": event, "task_id": task, "webhook_id": WEBHOOK, "history_items": [history]})
            .to_string();
        let sig = hmac_hex(CLICKUP_SECRET, body.as_bytes());
        let (status, resp) = self
            .app
            .post_signed("/webhooks/clickup", "x-signature", sig, &body)
            .await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        self.settled(&resp).await
    }

    /// Posts a signed Slack event callback and waits until its job has finished.
    async fn slack(&mut self, event_id: &str, event: Value) -> JobOutcome {
        let body = json!({"type": "event_callback", "team_id": TEAM, "event_id": event_id, "event": event})
            .to_string();
        let (status, resp) = self
            .app
            .post_slack("/webhooks/slack", &body, now_s(), SLACK_SECRET)
            .await;
        assert_eq!(status, StatusCode::OK, "{resp}");
        self.settled(&resp).await
    }

    /// The job's last outcome, once it is done or dead (retries are awaited).
    async fn settled(&mut self, accepted: &Value) -> JobOutcome {
        let id: Uuid = accepted["job_id"]
            .as_str()
            .expect("job_id")
            .parse()
            .expect("uuid");
        self.finished(|o| o.job_id == id).await
    }

    /// `GET /api/jobs/{id}` of the first tool call to finish since setup.
    async fn finished_tool_job(&mut self) -> Value {
        let done = self.finished(|o| o.kind == "tool.call").await;
        self.app
            .get_json(&format!("/api/jobs/{}", done.job_id), &self.reader)
            .await
    }

    /// The first job matching `which` to finish (done or dead) since setup.
    async fn finished(&mut self, which: impl Fn(&JobOutcome) -> bool) -> JobOutcome {
        loop {
            let o = self.finished_or_retried(&which).await;
            if o.status != JobStatus::Queued {
                return o;
            }
        }
    }

    /// The next attempt of a job matching `which` to end, however it ended.
    async fn finished_or_retried(&mut self, which: impl Fn(&JobOutcome) -> bool) -> JobOutcome {
        loop {
            let o = tokio::time::timeout(Duration::from_secs(15), self.outcomes.recv())
                .await
                .expect("the job finishes in time")
                .expect("outcomes");
            if which(&o) {
                return o;
            }
        }
    }

    /// What the agent has been sent so far: (type, data) per inbox event.
    async fn inbox(&self, agent: &AgentWithSecret) -> Vec<(String, Value)> {
        let path = format!("/api/agents/{}/inbox", agent.agent.id);
        let page = self.app.get_json(&path, &self.reader).await;
        page["events"]
            .as_array()
            .unwrap_or_else(|| panic!("{page}"))
            .iter()
            .map(|e| {
                (
                    e["type"].as_str().expect("type").to_owned(),
                    e["data"].clone(),
                )
            })
            .collect()
    }

    /// Task T1 ("Fix login", assigned to alice) created in L1 and processed.
    async fn task_created(&mut self) -> String {
        self.fake
            .put_task(task_json("T1", "Fix login", "in progress", "L1", &[111]));
        let done = self
            .clickup("taskCreated", "T1", history("h1", "183", None))
            .await;
        assert_eq!(
            (done.status, done.reason.as_deref()),
            (JobStatus::Done, None),
            "{done:?}"
        );
        self.thread_of_t1().await
    }

    async fn thread_of_t1(&self) -> String {
        self.app
            .state
            .store
            .task_by_clickup_id(self.tenant, &"T1".parse().expect("task id"))
            .await
            .expect("store")
            .expect("task mapping")
            .slack_thread_ts
            .expect("thread")
            .into()
    }

    async fn tool(
        &self,
        agent: &mut Agent,
        request_id: &str,
        tool: &str,
        args: Value,
        timeout_ms: Option<u64>,
    ) -> Value {
        let mut data = json!({"request_id": request_id, "tool": tool, "args": args});
        if let Some(t) = timeout_ms {
            data["timeout_ms"] = json!(t);
        }
        agent
            .send(json!({"type": "tool_request", "data": data}))
            .await;
        loop {
            let msg = agent.recv().await;
            if msg.as_event().is_some() {
                let (kind, _, _, data) = event(&msg);
                if kind == "tool_result" && data["request_id"] == request_id {
                    return data;
                }
            }
        }
    }
}

/// A ClickUp history item by `user`, optionally carrying a comment.
fn history(id: &str, user: &str, comment: Option<(&str, &str)>) -> Value {
    let mut h = json!({"id": id, "type": 1, "date": "1700000000000",
                       "user": {"id": user.parse::<u64>().expect("numeric user"), "username": format!("user{user}")}});
    if let Some((cid, text)) = comment {
        h["field"] = json!("comment");
        h["comment"] = json!({"id": cid, "text_content": text});
    }
    h
}

fn kinds(inbox: &[(String, Value)]) -> Vec<&str> {
    inbox.iter().map(|(k, _)| k.as_str()).collect()
}
