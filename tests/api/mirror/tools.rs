//! Agent tool requests out to Slack and ClickUp: replies in both, retries on 5xx and
//! 429, errors without retry, timeouts, missing tokens, and what Nexus wrote ignored
//! when it comes back, then forgotten.

use nexus::store::JobStatus;
use serde_json::{Value, json};

use super::{NEXUS_CLICKUP_USER, history, kinds, setup, setup_with};
use crate::agent_client::{Agent, event};
use crate::both_profiles;
use crate::fake_providers::CLICKUP_TOKEN;
use crate::helpers::Profile;

both_profiles!(
    task_reply_posts_in_the_thread_and_comments_and_its_echo_is_ignored,
    a_provider_500_is_retried_and_posts_once,
    a_provider_429_is_retried_after_its_retry_after,
    a_provider_400_is_a_tool_error_without_retry,
    provider_redirects_are_not_followed_and_huge_answers_not_read,
    a_tool_past_its_timeout_answers_timeout,
    a_tenant_without_tokens_gets_a_clear_tool_error,
    what_nexus_wrote_is_forgotten_after_the_retention,
    a_provider_outage_of_five_failures_is_outlasted,
    a_kinds_own_attempt_budget_gives_up_sooner,
);

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
            json!({"channel": "C1", "text": "hello"}),
            None,
        )
        .await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["result"]["channel"], "C1");
    let posts = m.fake.requests_to("/slack/chat.postMessage");
    assert_eq!(posts.len(), 2, "the failed attempt and the retry");
    assert_eq!(posts[0].body, posts[1].body);
    let job = m.finished_tool_job().await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_u64()),
        (Some("done"), Some(2))
    );
    let first_error = job["attempts_log"][0]["error"].as_str().unwrap_or_default();
    assert!(first_error.contains("HTTP 500"), "{job}");
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
        json!({"channel": "C1", "text": "hi"}),
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
    let odd_channel = m
        .tool(
            &mut alice,
            "r9",
            "slack.post_message",
            json!({"channel": "#general", "text": "hi"}),
            None,
        )
        .await;
    assert_eq!(odd_channel["error"]["code"], "invalid_args");
    let message = odd_channel["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("the Slack channel id must be"),
        "{message}"
    );
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
    let mut m = setup_with(p, false, |_| {}).await;
    // T1 was never seen (no token to read it): only an `any` scope lets the call through.
    let any = Some(nexus::store::ToolScope::Any);
    let store = &m.app.state.store;
    store
        .set_tenant_tools(m.tenant, any, None)
        .await
        .expect("scope");
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

async fn what_nexus_wrote_is_forgotten_after_the_retention(p: Profile) {
    let mut m = setup(p).await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    let result = m
        .tool(
            &mut alice,
            "r9",
            "slack.post_message",
            json!({"channel": "C1", "text": "hello"}),
            None,
        )
        .await;
    let external = format!("C1:{}", result["result"]["ts"].as_str().expect("ts"));
    let job = m.finished_tool_job().await;
    let op_key = format!("tool:{}:slack", job["id"].as_str().expect("id"));
    let store = &m.app.state.store;
    let slack = nexus::store::Provider::Slack;
    assert!(store.effect_result(&op_key).await.expect("read").is_some());
    let now = chrono::Utc::now().timestamp_millis();
    // Written after the cutoff: kept.
    assert_eq!(
        store
            .delete_old_provider_writes(now - 60_000, 10)
            .await
            .expect("sweep"),
        0
    );
    assert_eq!(
        store
            .delete_old_effects(now - 60_000, 10)
            .await
            .expect("sweep"),
        0
    );
    assert!(
        store
            .is_own_write(m.tenant, slack, &external)
            .await
            .expect("read")
    );
    // Older than the cutoff: gone, with its result.
    assert_eq!(
        store
            .delete_old_provider_writes(now + 1_000, 10)
            .await
            .expect("sweep"),
        1
    );
    assert_eq!(
        store
            .delete_old_effects(now + 1_000, 10)
            .await
            .expect("sweep"),
        1
    );
    assert!(
        !store
            .is_own_write(m.tenant, slack, &external)
            .await
            .expect("read")
    );
    assert_eq!(store.effect_result(&op_key).await.expect("read"), None);
}

/// Sends a tool request without waiting for its result.
async fn agent_tool_request(agent: &mut Agent, request_id: &str, tool: &str, args: Value) {
    let data = json!({"request_id": request_id, "tool": tool, "args": args});
    agent
        .send(json!({"type": "tool_request", "data": data}))
        .await;
}

async fn provider_redirects_are_not_followed_and_huge_answers_not_read(p: Profile) {
    let mut m = setup(p).await;
    m.task_created().await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    event(&alice.recv().await);
    // A redirect would carry the bot token to wherever it points.
    m.fake
        .redirect_next("/slack/chat.postMessage", "/elsewhere/collect");
    let result = m
        .tool(
            &mut alice,
            "r-redirect",
            "slack.post_message",
            json!({"channel": "C1", "text": "hi"}),
            None,
        )
        .await;
    assert_eq!(result["error"]["code"], "provider_error", "{result}");
    let message = result["error"]["message"].as_str().expect("message");
    assert!(message.contains("302"), "{message}");
    assert!(
        m.fake.requests_to("/elsewhere/collect").is_empty(),
        "the redirect was followed"
    );
    // An answer over 4 MiB is refused, not read into memory.
    m.fake.fail_next(
        "/clickup/task/T1/comment",
        200,
        json!({"id": "x".repeat(5 * 1024 * 1024)}),
    );
    let result = m
        .tool(
            &mut alice,
            "r-huge",
            "clickup.create_comment",
            json!({"task_id": "T1", "text": "x"}),
            None,
        )
        .await;
    assert_eq!(result["error"]["code"], "provider_error", "{result}");
    let message = result["error"]["message"].as_str().expect("message");
    assert!(message.contains("larger than"), "{message}");
}

async fn a_provider_outage_of_five_failures_is_outlasted(p: Profile) {
    // The default retry budget (8 attempts); only the delays are shortened.
    let mut m = setup(p).await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    for _ in 0..5 {
        m.fake
            .fail_next("/slack/chat.postMessage", 503, json!({"ok": false}));
    }
    let result = m
        .tool(
            &mut alice,
            "r-outage",
            "slack.post_message",
            json!({"channel": "C1", "text": "after the blip"}),
            None,
        )
        .await;
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(m.fake.requests_to("/slack/chat.postMessage").len(), 6);
    let job = m.finished_tool_job().await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_u64()),
        (Some("done"), Some(6)),
        "{job}"
    );
}

async fn a_kinds_own_attempt_budget_gives_up_sooner(p: Profile) {
    let mut m = setup_with(p, true, |c| {
        c.serve.queue.max_attempts_for = vec![("tool.call".into(), 2)];
    })
    .await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    for _ in 0..3 {
        m.fake
            .fail_next("/slack/chat.postMessage", 503, json!({"ok": false}));
    }
    let result = m
        .tool(
            &mut alice,
            "r-budget",
            "slack.post_message",
            json!({"channel": "C1", "text": "soon or never"}),
            None,
        )
        .await;
    assert_eq!(result["error"]["code"], "provider_unavailable", "{result}");
    assert_eq!(m.fake.requests_to("/slack/chat.postMessage").len(), 2);
    let job = m.finished_tool_job().await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_u64()),
        (Some("dead"), Some(2)),
        "{job}"
    );
}
