//! What an agent may do with tools: reach only its tenant's mapped channels and tasks
//! (unless the tenant allows any), broadcast only when allowed, keep a bounded number
//! of requests waiting, and have its waits end with its session.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Mirror, setup_with};
use crate::agent_client::{Agent, event};
use crate::both_profiles;
use crate::cli::{json_lines, nexus, one};
use crate::cluster::eventually;
use crate::helpers::Profile;

both_profiles!(
    tools_reach_only_mapped_targets_unless_the_tenant_allows_any,
    broadcasts_are_neutralised_unless_the_tenant_allows_them,
    requests_over_the_in_flight_limit_get_too_many_requests,
    a_disconnected_agents_waits_end_and_its_results_wait_in_the_inbox,
);

const POSTS: &str = "/slack/chat.postMessage";

/// The mirror fixture with every tenant setting read afresh and `max` requests in flight.
async fn setup(p: Profile, max: u32) -> Mirror {
    setup_with(p, true, |c| {
        c.serve.cache_ttl = Duration::ZERO;
        c.serve.tool_max_in_flight = max;
    })
    .await
}

fn post(channel: &str, text: &str) -> Value {
    json!({"channel": channel, "text": text})
}

async fn send_tool(agent: &mut Agent, request_id: &str, tool: &str, args: Value) {
    let data = json!({"request_id": request_id, "tool": tool, "args": args});
    agent
        .send(json!({"type": "tool_request", "data": data}))
        .await;
}

/// The next `tool_result` the agent receives (other events are skipped).
async fn next_result(agent: &mut Agent) -> Value {
    loop {
        let msg = agent.recv().await;
        if msg.as_event().is_some() {
            let (kind, _, _, data) = event(&msg);
            if kind == "tool_result" {
                return data;
            }
        }
    }
}

fn refused_with(result: &Value, code: &str, naming: &str) {
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["error"]["code"], code, "{result}");
    let message = result["error"]["message"].as_str().expect("message");
    assert!(message.contains(naming), "{message}");
}

async fn tools_reach_only_mapped_targets_unless_the_tenant_allows_any(p: Profile) {
    let mut m = setup(p, 16).await;
    m.task_created().await; // T1 in L1, whose thread opener goes to C1
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    event(&alice.recv().await); // its task_assigned
    let outside = m.tool(
        &mut alice,
        "r1",
        "slack.post_message",
        post("C2", "hi"),
        None,
    );
    refused_with(&outside.await, "target_not_allowed", "C2");
    for (id, tool, args) in [
        (
            "r2",
            "clickup.create_comment",
            json!({"task_id": "T9", "text": "x"}),
        ),
        (
            "r3",
            "clickup.update_status",
            json!({"task_id": "T9", "status": "done"}),
        ),
        ("r4", "task.reply", json!({"task_id": "T9", "text": "x"})),
    ] {
        let result = m.tool(&mut alice, id, tool, args, None).await;
        refused_with(&result, "target_not_allowed", "T9");
    }
    assert_eq!(m.fake.requests_to(POSTS).len(), 1, "only the thread opener");
    assert!(m.fake.requests_to("/clickup/task/T9").is_empty());
    assert!(m.fake.requests_to("/clickup/task/T9/comment").is_empty());

    let inside = m.tool(
        &mut alice,
        "r5",
        "slack.post_message",
        post("C1", "hi"),
        None,
    );
    assert_eq!(inside.await["ok"], true);
    let comment = json!({"task_id": "T1", "text": "x"});
    let on_task = m.tool(&mut alice, "r6", "clickup.create_comment", comment, None);
    assert_eq!(on_task.await["ok"], true);

    // The operator widens the scope from the command line.
    let tenant = m.tenant.to_string();
    let db = &m.app.db;
    let refused = nexus(db, &["tenant", "set", &tenant]);
    assert!(!refused.status.success(), "nothing to change is an error");
    let set = one(&nexus(
        db,
        &["tenant", "set", &tenant, "--tool-scope", "any"],
    ));
    assert_eq!(
        (
            set["tool_scope"].as_str(),
            set["allow_broadcasts"].as_bool()
        ),
        (Some("any"), Some(false))
    );
    assert_eq!(
        json_lines(&nexus(db, &["tenant", "list"]))[0]["tool_scope"],
        "any"
    );
    let anywhere = m.tool(
        &mut alice,
        "r7",
        "slack.post_message",
        post("C2", "hi"),
        None,
    );
    assert_eq!(anywhere.await["ok"], true);
    assert_eq!(
        m.fake.requests_to(POSTS).last().expect("post").body,
        post("C2", "hi")
    );
}

async fn broadcasts_are_neutralised_unless_the_tenant_allows_them(p: Profile) {
    let mut m = setup(p, 16).await;
    m.task_created().await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    event(&alice.recv().await);
    let text = "<!channel> ship at 5 <!here|here> @everyone cc <!subteam^S01|@ops> <@UALICE>";
    let inert = "&lt;!channel&gt; ship at 5 &lt;!here|here&gt; @\u{200D}everyone \
                 cc &lt;!subteam^S01|@ops&gt; <@UALICE>";
    let posted = m.tool(
        &mut alice,
        "r1",
        "slack.post_message",
        post("C1", text),
        None,
    );
    assert_eq!(posted.await["ok"], true);
    let sent = m.fake.requests_to(POSTS).pop().expect("post").body;
    assert_eq!(sent, post("C1", inert), "inert, and no link_names");
    // task.reply: inert in Slack; a ClickUp comment's text notifies nobody, kept as written.
    let reply = m.tool(
        &mut alice,
        "r2",
        "task.reply",
        json!({"task_id": "T1", "text": text}),
        None,
    );
    assert_eq!(reply.await["ok"], true);
    assert_eq!(
        m.fake.requests_to(POSTS).pop().expect("post").body["text"],
        inert
    );
    let comment = m
        .fake
        .requests_to("/clickup/task/T1/comment")
        .pop()
        .expect("comment");
    assert_eq!(comment.body["comment_text"], text);

    let store = &m.app.state.store;
    store
        .set_tenant_tools(m.tenant, None, Some(true))
        .await
        .expect("allow");
    let loud = m.tool(
        &mut alice,
        "r3",
        "slack.post_message",
        post("C1", text),
        None,
    );
    assert_eq!(loud.await["ok"], true);
    assert_eq!(
        m.fake.requests_to(POSTS).pop().expect("post").body,
        post("C1", text)
    );
}

async fn requests_over_the_in_flight_limit_get_too_many_requests(p: Profile) {
    let m = setup(p, 2).await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    m.fake.hold(POSTS);
    for id in ["r1", "r2", "r3"] {
        send_tool(&mut alice, id, "slack.post_message", post("C1", id)).await;
    }
    // The first answer while r1 and r2 hang at Slack: r3 was never queued.
    let over = next_result(&mut alice).await;
    assert_eq!(over["request_id"], "r3");
    refused_with(&over, "too_many_requests", "2 tool requests");
    eventually("r1 and r2 reach Slack", Duration::from_secs(10), || async {
        m.fake.requests_to(POSTS).len() == 2
    })
    .await;
    let jobs = m.app.get_json("/api/jobs?kind=tool.call", &m.reader).await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(2), "{jobs}");

    m.fake.release(POSTS);
    let mut done = [next_result(&mut alice).await, next_result(&mut alice).await];
    done.sort_by_key(|r| r["request_id"].to_string());
    assert_eq!(
        (done[0]["request_id"].as_str(), done[0]["ok"].as_bool()),
        (Some("r1"), Some(true))
    );
    assert_eq!(
        (done[1]["request_id"].as_str(), done[1]["ok"].as_bool()),
        (Some("r2"), Some(true))
    );
    // Places are free again, and the refused id may be sent again: it runs this time.
    let again = m.tool(
        &mut alice,
        "r3",
        "slack.post_message",
        post("C1", "r3"),
        None,
    );
    assert_eq!(again.await["ok"], true);
    assert_eq!(m.fake.requests_to(POSTS).len(), 3);
}

async fn a_disconnected_agents_waits_end_and_its_results_wait_in_the_inbox(p: Profile) {
    let mut m = setup(p, 2).await;
    m.task_created().await;
    m.fake.hold(POSTS);
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    event(&alice.recv().await);
    for id in ["r1", "r2"] {
        send_tool(&mut alice, id, "slack.post_message", post("C1", id)).await;
    }
    let full = m.tool(
        &mut alice,
        "r3",
        "clickup.update_status",
        json!({"task_id": "T1", "status": "done"}),
        None,
    );
    refused_with(&full.await, "too_many_requests", "2 tool requests");
    eventually(
        "both posts reach Slack",
        Duration::from_secs(10),
        || async {
            m.fake.requests_to(POSTS).len() == 3 // the opener and r1, r2
        },
    )
    .await;

    alice.ws.close(None).await.expect("close");
    let online = format!("/api/tenants/{}/agents/online", m.tenant);
    eventually("alice is offline", Duration::from_secs(10), || async {
        m.app.get_json(&online, &m.reader).await["agents"] == json!([])
    })
    .await;
    // Her two requests still hang at Slack, but no longer wait on this node.
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    let status = json!({"task_id": "T1", "status": "done"});
    let freed = m.tool(&mut alice, "r4", "clickup.update_status", status, None);
    assert_eq!(
        freed.await["ok"],
        true,
        "the limit freed up with the session"
    );

    m.fake.release(POSTS);
    let mut results = Vec::new();
    while results.len() < 2 {
        let r = next_result(&mut alice).await;
        if r["request_id"] == "r1" || r["request_id"] == "r2" {
            results.push((
                r["request_id"].as_str().map(str::to_owned),
                r["ok"].as_bool(),
            ));
        }
    }
    results.sort();
    assert_eq!(
        results,
        [
            (Some("r1".into()), Some(true)),
            (Some("r2".into()), Some(true))
        ]
    );
}
