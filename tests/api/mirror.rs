//! The mirror end to end: signed ClickUp and Slack webhooks in, agent events out, agent
//! tool requests out to fake Slack and ClickUp servers that check every request.

use std::time::Duration;

use nexus::admin::{AgentSpec, AgentWithSecret, MappingSpec, SourceSpec};
use nexus::queue::JobOutcome;
use nexus::store::{JobStatus, SourceKind};
use nexus_proto::{Seq, TenantId};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::agent_client::{Agent, event};
use crate::both_profiles;
use crate::fake_providers::{CLICKUP_TOKEN, FakeProviders, SLACK_BOT_TOKEN, task_json};
use crate::helpers::{Profile, TestApp};
use crate::webhook_support::{CLICKUP_SECRET, SLACK_SECRET, hmac_hex, now_s};

both_profiles!(
    a_new_task_reaches_its_assignee_once_and_opens_one_thread,
    later_status_changes_and_comments_become_context_updates,
    a_thread_reply_feeds_the_task_agents_once,
    an_alias_mention_wakes_each_member_once,
    bots_edits_and_our_own_messages_are_ignored,
    task_reply_posts_in_the_thread_and_comments_and_its_echo_is_ignored,
    a_provider_500_is_retried_and_posts_once,
    a_provider_429_is_retried_after_its_retry_after,
    a_provider_400_is_a_tool_error_without_retry,
    a_tool_past_its_timeout_answers_timeout,
    a_tenant_without_tokens_gets_a_clear_tool_error,
    unmapped_lists_are_counted_as_unmapped,
    a_mapping_removed_through_the_api_applies_to_the_next_webhook,
    created_channels_are_recorded_for_operators,
    what_nexus_wrote_is_forgotten_after_the_retention,
);

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
}

async fn setup(p: Profile) -> Mirror {
    setup_with(p, true).await
}

/// A tenant with Slack and ClickUp sources (`tokens`: with API tokens), list L1 mapped
/// to channel C1, three agents and an alias.
async fn setup_with(p: Profile, tokens: bool) -> Mirror {
    let fake = FakeProviders::start().await;
    let (slack_url, clickup_url) = (fake.slack_url(), fake.clickup_url());
    let app = TestApp::spawn_with(p, |c| {
        c.serve.providers.slack_api_url = slack_url;
        c.serve.providers.clickup_api_url = clickup_url;
        c.serve.queue.backoff_base = Duration::from_millis(20);
        c.serve.queue.backoff_max = Duration::from_millis(100);
    })
    .await;
    let store = &app.state.store;
    let tenant = app.tenant("acme").await.id;
    let spec = |name: &str, clickup: Option<&str>, slack: Option<&str>| AgentSpec {
        name: name.into(),
        clickup_user: clickup.map(Into::into),
        slack_user: slack.map(Into::into),
    };
    let mut agents = nexus::admin::create_agents(
        store,
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
            SourceSpec {
                tenant,
                kind,
                external_id: external.into(),
                secret: secret.into(),
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
        MappingSpec {
            tenant,
            clickup_list: "L1".into(),
            slack_channel: "C1".into(),
            default_agents: vec![carol.agent.id],
            open_threads: true,
        },
    )
    .await
    .expect("mapping");
    nexus::admin::add_alias(store, tenant, "@AI_Squad", &[bob.agent.id, carol.agent.id])
        .await
        .expect("alias");
    let outcomes = app.state.queue.subscribe();
    Mirror {
        app,
        fake,
        tenant,
        alice,
        bob,
        carol,
        outcomes,
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
        self.app
            .state
            .store
            .read_inbox(agent.agent.id, Seq::ZERO, 100)
            .await
            .expect("inbox")
            .into_iter()
            .map(|e| {
                (
                    e.kind.as_str().to_owned(),
                    serde_json::from_str(&e.data).expect("json"),
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
            .task_by_clickup_id(self.tenant, "T1")
            .await
            .expect("store")
            .expect("task mapping")
            .slack_thread_ts
            .expect("thread")
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

async fn agent_tool_request(agent: &mut Agent, request_id: &str, tool: &str, args: Value) {
    let data = json!({"request_id": request_id, "tool": tool, "args": args});
    agent
        .send(json!({"type": "tool_request", "data": data}))
        .await;
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

async fn a_new_task_reaches_its_assignee_once_and_opens_one_thread(p: Profile) {
    let mut m = setup(p).await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    let thread = m.task_created().await;
    // ClickUp follows taskCreated with the status it was created in.
    let again = m
        .clickup("taskStatusUpdated", "T1", history("h2", "183", None))
        .await;
    assert_eq!(again.status, JobStatus::Done);

    let expected = json!({
        "task": {"id": "T1", "name": "Fix login", "status": "in progress",
                 "url": "https://app.clickup.com/t/T1", "list_id": "L1"},
        "mapping": {"slack_channel": "C1", "slack_thread_ts": thread},
        "change": "created",
    });
    let (kind, _, _, data) = event(&alice.recv().await);
    assert_eq!((kind, &data), ("task_assigned", &expected));
    assert_eq!(
        m.inbox(&m.alice).await,
        vec![("task_assigned".to_owned(), expected)],
        "one task_assigned, nothing else"
    );
    assert!(
        m.inbox(&m.carol).await.is_empty(),
        "defaults are for tasks nobody is assigned to"
    );

    let posts = m.fake.requests_to("/slack/chat.postMessage");
    assert_eq!(posts.len(), 1, "one thread-opening post");
    assert_eq!(
        posts[0].auth.as_deref(),
        Some(format!("Bearer {SLACK_BOT_TOKEN}").as_str())
    );
    assert_eq!(
        posts[0].body,
        json!({"channel": "C1", "text": "<https://app.clickup.com/t/T1|Fix login>"})
    );
    let reads = m.fake.requests_to("/clickup/task/T1");
    assert_eq!(reads.len(), 2, "each webhook reads the task");
    assert!(
        reads
            .iter()
            .all(|r| r.method == "GET" && r.auth.as_deref() == Some(CLICKUP_TOKEN))
    );
}

async fn later_status_changes_and_comments_become_context_updates(p: Profile) {
    let mut m = setup(p).await;
    m.task_created().await;
    m.fake
        .put_task(task_json("T1", "Fix login", "review", "L1", &[111]));
    m.clickup("taskStatusUpdated", "T1", history("h2", "183", None))
        .await;
    m.clickup(
        "taskCommentPosted",
        "T1",
        history("h3", "183", Some(("c-1", "Logs attached"))),
    )
    .await;
    // A newly assigned agent gets the task; the others hear about it.
    m.fake.put_task(task_json(
        "T1",
        "Fix login @AI_Squad",
        "review",
        "L1",
        &[111],
    ));
    m.clickup("taskAssigneeUpdated", "T1", history("h4", "183", None))
        .await;

    let inbox = m.inbox(&m.alice).await;
    assert_eq!(
        kinds(&inbox),
        [
            "task_assigned",
            "context_update",
            "context_update",
            "context_update"
        ]
    );
    let status = &inbox[1].1;
    assert_eq!(
        (
            &status["change"],
            &status["text"],
            &status["task"]["status"],
            &status["source"]
        ),
        (
            &json!("status"),
            &json!("status is now \"review\""),
            &json!("review"),
            &json!("clickup")
        )
    );
    let comment = &inbox[2].1;
    assert_eq!(
        (
            &comment["change"],
            &comment["text"],
            &comment["author"],
            &comment["task_id"]
        ),
        (
            &json!("comment"),
            &json!("Logs attached"),
            &json!("user183"),
            &json!("T1")
        )
    );
    assert_eq!(inbox[3].1["change"], "assigned");
    for member in [&m.bob, &m.carol] {
        let got = m.inbox(member).await;
        assert_eq!(
            kinds(&got),
            ["task_assigned"],
            "@AI_Squad in the task assigns its members"
        );
        assert_eq!(got[0].1["change"], "assigned");
    }
}

async fn a_thread_reply_feeds_the_task_agents_once(p: Profile) {
    let mut m = setup(p).await;
    let thread = m.task_created().await;
    let reply = json!({"type": "message", "channel": "C1", "user": "U2", "text": "any update?",
                       "ts": "1700000100.000200", "thread_ts": thread});
    let done = m.slack("Ev1", reply.clone()).await;
    assert_eq!((done.status, done.reason), (JobStatus::Done, None));
    // Slack sends the same message again as app_mention when it names the app.
    let mut mention = reply;
    mention["type"] = json!("app_mention");
    m.slack("Ev2", mention).await;

    let inbox = m.inbox(&m.alice).await;
    assert_eq!(kinds(&inbox), ["task_assigned", "context_update"]);
    assert_eq!(
        inbox[1].1,
        json!({"task_id": "T1", "source": "slack", "text": "any update?", "author": "U2",
               "channel": "C1", "ts": "1700000100.000200"})
    );
    // A top-level message in the channel is not a reply to the task.
    let top = json!({"type": "message", "channel": "C1", "user": "U2", "text": "lunch?", "ts": "1700000200.000300"});
    let done = m.slack("Ev3", top).await;
    assert_eq!(done.reason.as_deref(), Some("no_recipients"));
    assert_eq!(m.inbox(&m.alice).await.len(), 2);
}

async fn an_alias_mention_wakes_each_member_once(p: Profile) {
    let mut m = setup(p).await;
    let mut bob = m.app.online(&m.bob, m.tenant).await;
    let text = "<!subteam^S0614TZR7|@ai_squad> can someone look at the build?";
    let msg = json!({"type": "message", "channel": "C7", "user": "U2", "text": text, "ts": "1700000300.000100"});
    m.slack("Ev10", msg.clone()).await;
    let mut mention = msg;
    mention["type"] = json!("app_mention");
    m.slack("Ev11", mention).await;
    // Plain text works too, and so does an agent's own Slack user.
    m.slack(
        "Ev12",
        json!({"type": "message", "channel": "C7", "user": "U2",
                           "text": "@AI_Squad and <@UALICE>: standup", "ts": "1700000400.000100"}),
    )
    .await;

    let expected = json!({"text": text, "channel": "C7", "ts": "1700000300.000100",
                          "author": "U2", "reason": "alias:ai_squad"});
    let (kind, _, _, data) = event(&bob.recv().await);
    assert_eq!((kind, &data), ("wake_up", &expected));
    for member in [&m.bob, &m.carol] {
        let inbox = m.inbox(member).await;
        assert_eq!(
            kinds(&inbox),
            ["wake_up", "wake_up"],
            "one per message, not per Slack event"
        );
        assert_eq!(inbox[1].1["reason"], "alias:AI_Squad");
    }
    let alice = m.inbox(&m.alice).await;
    assert_eq!(kinds(&alice), ["wake_up"]);
    assert_eq!(alice[0].1["reason"], "mention");
}

async fn bots_edits_and_our_own_messages_are_ignored(p: Profile) {
    let mut m = setup(p).await;
    let base = json!({"type": "message", "channel": "C7", "user": "U2", "text": "@AI_Squad hi", "ts": "1700000500.000100"});
    let mut bot = base.clone();
    bot["subtype"] = json!("bot_message");
    bot["bot_id"] = json!("B1");
    let mut ours = base.clone();
    ours["user"] = json!(NEXUS_SLACK_USER);
    let mut edit = base.clone();
    edit["subtype"] = json!("message_changed");
    let mut other_bot = base;
    other_bot["bot_id"] = json!("B2");
    for (i, event) in [bot, ours, edit, other_bot].into_iter().enumerate() {
        let done = m.slack(&format!("EvB{i}"), event).await;
        assert_eq!(
            (done.status, done.reason.as_deref()),
            (JobStatus::Done, Some("ignored"))
        );
    }
    for agent in [&m.alice, &m.bob, &m.carol] {
        assert!(m.inbox(agent).await.is_empty());
    }
}

async fn task_reply_posts_in_the_thread_and_comments_and_its_echo_is_ignored(p: Profile) {
    let mut m = setup(p).await;
    let thread = m.task_created().await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    event(&alice.recv().await); // its task_assigned
    let result = m
        .tool(
            &mut alice,
            "r1",
            "task.reply",
            json!({"task_id": "T1", "text": "On it"}),
            None,
        )
        .await;
    let posts = m.fake.requests_to("/slack/chat.postMessage");
    assert_eq!(posts.len(), 2, "the thread opener and the reply");
    assert_eq!(
        posts[1].body,
        json!({"channel": "C1", "text": "On it", "thread_ts": thread})
    );
    let comments = m.fake.requests_to("/clickup/task/T1/comment");
    assert_eq!(comments.len(), 1);
    assert_eq!(
        comments[0].body,
        json!({"comment_text": "On it", "notify_all": false})
    );
    assert_eq!(comments[0].auth.as_deref(), Some(CLICKUP_TOKEN));
    let comment_id = result["result"]["clickup"]["comment_id"]
        .as_str()
        .expect("comment id")
        .to_owned();
    assert_eq!(
        result,
        json!({"request_id": "r1", "ok": true, "result": {
            "task_id": "T1",
            "slack": {"channel": "C1", "ts": result["result"]["slack"]["ts"]},
            "clickup": {"comment_id": comment_id},
        }})
    );

    // ClickUp echoes the comment back (by the token's user, or by a human's token).
    let echo = m
        .clickup(
            "taskCommentPosted",
            "T1",
            history("h9", "183", Some((&comment_id, "On it"))),
        )
        .await;
    assert_eq!(echo.reason.as_deref(), Some("own_change"));
    let by_us = m
        .clickup(
            "taskStatusUpdated",
            "T1",
            history("h10", NEXUS_CLICKUP_USER, None),
        )
        .await;
    assert_eq!(by_us.reason.as_deref(), Some("own_change"));
    assert_eq!(
        kinds(&m.inbox(&m.alice).await),
        ["task_assigned", "tool_result"]
    );
}

async fn a_provider_500_is_retried_and_posts_once(p: Profile) {
    let mut m = setup(p).await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    m.fake
        .fail_next("/slack/chat.postMessage", 500, json!({"ok": false}));
    let result = m
        .tool(
            &mut alice,
            "r2",
            "slack.post_message",
            json!({"channel": "C9", "text": "hello"}),
            None,
        )
        .await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["result"]["channel"], "C9");
    let posts = m.fake.requests_to("/slack/chat.postMessage");
    assert_eq!(posts.len(), 2, "the failed attempt and the retry");
    assert_eq!(posts[0].body, posts[1].body);
    let done = m.finished(|o| o.kind == "tool.call").await;
    let (job, attempts) = m.app.state.store.get_job(done.job_id).await.expect("job");
    assert_eq!((job.status, job.attempts), (JobStatus::Done, 2));
    assert!(attempts[0].error.contains("HTTP 500"), "{attempts:?}");
    assert_eq!(
        kinds(&m.inbox(&m.alice).await),
        ["tool_result"],
        "one answer"
    );
}

async fn a_provider_429_is_retried_after_its_retry_after(p: Profile) {
    let mut m = setup(p).await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    m.fake.fail_next_with(
        "/slack/chat.postMessage",
        429,
        Some(1),
        json!({"ok": false, "error": "ratelimited"}),
    );
    agent_tool_request(
        &mut alice,
        "r8",
        "slack.post_message",
        json!({"channel": "C9", "text": "hi"}),
    )
    .await;
    let limited = m.finished_or_retried(|o| o.kind == "tool.call").await;
    assert_eq!(limited.status, JobStatus::Queued, "a 429 is retried");
    let (job, _) = m
        .app
        .state
        .store
        .get_job(limited.job_id)
        .await
        .expect("job");
    let wait = job.run_at - chrono::Utc::now().timestamp_millis();
    // The backoff alone would be at most 20 ms here.
    assert!(
        wait > 500,
        "the retry waits for Retry-After (1 s), not the backoff: {wait} ms"
    );
    let done = m.finished(|o| o.job_id == limited.job_id).await;
    assert_eq!(
        (
            done.status,
            m.fake.requests_to("/slack/chat.postMessage").len()
        ),
        (JobStatus::Done, 2)
    );
}

async fn a_provider_400_is_a_tool_error_without_retry(p: Profile) {
    let mut m = setup(p).await;
    m.task_created().await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    event(&alice.recv().await);
    m.fake.fail_next(
        "/clickup/task/T1/comment",
        400,
        json!({"err": "Comment text too long", "ECODE": "COMM_002"}),
    );
    let result = m
        .tool(
            &mut alice,
            "r3",
            "clickup.create_comment",
            json!({"task_id": "T1", "text": "x"}),
            None,
        )
        .await;
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"]["code"], "provider_error");
    let message = result["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("400") && message.contains("Comment text too long"),
        "{message}"
    );
    assert_eq!(
        m.fake.requests_to("/clickup/task/T1/comment").len(),
        1,
        "no retry"
    );

    let invalid = m
        .tool(
            &mut alice,
            "r4",
            "clickup.update_status",
            json!({"task_id": "T1"}),
            None,
        )
        .await;
    assert_eq!(invalid["error"]["code"], "invalid_args");
}

async fn a_tool_past_its_timeout_answers_timeout(p: Profile) {
    let m = setup(p).await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    m.fake.hold("/slack/chat.postMessage");
    let result = m
        .tool(
            &mut alice,
            "r5",
            "slack.post_message",
            json!({"channel": "C1", "text": "hi"}),
            Some(200),
        )
        .await;
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"]["code"], "timeout");
    assert_eq!(m.fake.requests_to("/slack/chat.postMessage").len(), 1);
}

async fn a_tenant_without_tokens_gets_a_clear_tool_error(p: Profile) {
    let mut m = setup_with(p, false).await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    let slack = m
        .tool(
            &mut alice,
            "r6",
            "slack.post_message",
            json!({"channel": "C1", "text": "hi"}),
            None,
        )
        .await;
    assert_eq!(slack["error"]["code"], "slack_not_configured");
    let clickup = m
        .tool(
            &mut alice,
            "r7",
            "clickup.update_status",
            json!({"task_id": "T1", "status": "done"}),
            None,
        )
        .await;
    assert_eq!(clickup["error"]["code"], "clickup_not_configured");
    // Webhooks can't be mirrored either: the job says why.
    let dead = m
        .clickup("taskCreated", "T1", history("h1", "183", None))
        .await;
    assert_eq!(
        (dead.status, dead.reason.as_deref()),
        (JobStatus::Dead, Some("no_api_token"))
    );
    assert!(m.fake.requests_to("/slack/chat.postMessage").is_empty());
}

async fn unmapped_lists_are_counted_as_unmapped(p: Profile) {
    let mut m = setup(p).await;
    m.fake
        .put_task(task_json("T9", "Elsewhere", "open", "L9", &[111]));
    let done = m
        .clickup("taskCreated", "T9", history("h1", "183", None))
        .await;
    assert_eq!(
        (done.status, done.reason.as_deref()),
        (JobStatus::Done, Some("unmapped"))
    );
    let stats = m.app.queue_stats().await;
    assert_eq!(stats["reasons"]["unmapped"], 1);
    assert!(m.inbox(&m.alice).await.is_empty());
    assert!(m.fake.requests_to("/slack/chat.postMessage").is_empty());
}

/// Mappings are cached for the ClickUp path; removing one through this node's API must
/// still apply to the very next webhook.
async fn a_mapping_removed_through_the_api_applies_to_the_next_webhook(p: Profile) {
    let mut m = setup(p).await;
    m.task_created().await;
    let mapping = m
        .app
        .state
        .store
        .list_mappings(m.tenant)
        .await
        .expect("list")[0]
        .id;
    let key = m.app.operator_key("write", None).await;
    let path = format!("/api/tenants/{}/mappings/{mapping}", m.tenant);
    let removed = m
        .app
        .http
        .delete(m.app.url(&path))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(removed.status().as_u16(), 204);
    m.fake
        .put_task(task_json("T2", "After", "open", "L1", &[111]));
    let done = m
        .clickup("taskCreated", "T2", history("h2", "183", None))
        .await;
    assert_eq!(
        (done.status, done.reason.as_deref()),
        (JobStatus::Done, Some("unmapped"))
    );
}

async fn created_channels_are_recorded_for_operators(p: Profile) {
    let mut m = setup(p).await;
    let created = json!({"type": "channel_created",
                         "channel": {"id": "C42", "name": "proj-apollo", "created": 1_700_000_000, "creator": "U2"}});
    let done = m.slack("EvC1", created).await;
    assert_eq!(done.reason.as_deref(), Some("channel_recorded"));
    let key = m.app.operator_key("read", Some(m.tenant)).await;
    let body = m
        .app
        .get_json(&format!("/api/tenants/{}/channels", m.tenant), &key)
        .await;
    let channels = body["channels"].as_array().expect("channels");
    assert_eq!(channels.len(), 1);
    assert_eq!(
        (
            &channels[0]["channel_id"],
            &channels[0]["name"],
            &channels[0]["mapped"]
        ),
        (&json!("C42"), &json!("proj-apollo"), &json!(false))
    );
}

async fn what_nexus_wrote_is_forgotten_after_the_retention(p: Profile) {
    let m = setup(p).await;
    let store = &m.app.state.store;
    let slack = nexus::store::Provider::Slack;
    store
        .record_write(m.tenant, slack, "C1:1.0001", Some("op-1"), "{}")
        .await
        .expect("record");
    let now = chrono::Utc::now().timestamp_millis();
    // Written after the cutoff: kept.
    assert_eq!(
        store
            .delete_old_provider_writes(now - 60_000, 10)
            .await
            .expect("sweep"),
        0
    );
    assert!(
        store
            .is_own_write(m.tenant, slack, "C1:1.0001")
            .await
            .expect("read")
    );
    // Older than the cutoff: gone, with its step result.
    assert_eq!(
        store
            .delete_old_provider_writes(now + 1_000, 10)
            .await
            .expect("sweep"),
        1
    );
    assert!(
        !store
            .is_own_write(m.tenant, slack, "C1:1.0001")
            .await
            .expect("read")
    );
    assert_eq!(store.write_result("op-1").await.expect("read"), None);
}
