//! ClickUp webhooks in: a task reaches its assignees (or the mapping's defaults) once,
//! opens one Slack thread, and its later changes become context updates.

use nexus::store::JobStatus;
use serde_json::json;

use super::{history, kinds, setup};
use crate::agent_client::event;
use crate::both_profiles;
use crate::fake_providers::{CLICKUP_TOKEN, SLACK_BOT_TOKEN, task_json};
use crate::helpers::Profile;

both_profiles!(
    a_new_task_reaches_its_assignee_once_and_opens_one_thread,
    later_status_changes_and_comments_become_context_updates,
    unmapped_lists_are_counted_as_unmapped,
    a_mapping_removed_through_the_api_applies_to_the_next_webhook,
);

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
    // Tagged with the write it is, so a retry after a crash can find it in Slack.
    let meta = &posts[0].metadata;
    assert_eq!(meta["event_type"], "nexus_write");
    assert!(
        meta["event_payload"]["op_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("thread:")),
        "{meta}"
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
    let mappings = m
        .app
        .get_json(&format!("/api/tenants/{}/mappings", m.tenant), &m.reader)
        .await;
    let mapping = mappings["mappings"][0]["id"].as_str().expect("mapping id");
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
