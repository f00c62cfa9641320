//! Writes to Slack and ClickUp at most once: an attempt whose write happened but whose
//! answer never came back (as after a crash, a timeout or a lost lease) leaves its
//! intent pending, and the next attempt finds the write instead of making it again.

use nexus::store::JobStatus;
use serde_json::json;

use super::{history, kinds, setup};
use crate::both_profiles;
use crate::helpers::Profile;

both_profiles!(
    a_post_whose_answer_was_lost_is_found_not_made_again,
    a_comment_whose_answer_was_lost_is_found_not_made_again,
    a_thread_whose_answer_was_lost_is_opened_once,
);

async fn a_post_whose_answer_was_lost_is_found_not_made_again(p: Profile) {
    let mut m = setup(p).await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    m.fake.lose_answer_next("/slack/chat.postMessage");
    let result = m
        .tool(
            &mut alice,
            "r1",
            "slack.post_message",
            json!({"channel": "C1", "text": "hello"}),
            None,
        )
        .await;
    let messages = m.fake.slack_messages();
    assert_eq!(messages.len(), 1, "posted once: {messages:?}");
    assert_eq!(
        result,
        json!({"request_id": "r1", "ok": true, "result": {"channel": "C1", "ts": messages[0]["ts"]}}),
        "the answer names the message the first attempt posted"
    );
    assert_eq!(m.fake.requests_to("/slack/chat.postMessage").len(), 1);
    let looked = m.fake.requests_to("/slack/conversations.history");
    assert_eq!(looked.len(), 1, "the retry looked for it");
    assert_eq!(looked[0].body["channel"], "C1");
    assert_eq!(looked[0].body["include_all_metadata"], "true");
    let job = m.finished_tool_job().await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_u64()),
        (Some("done"), Some(2)),
        "{job}"
    );
    assert_eq!(
        kinds(&m.inbox(&m.alice).await),
        ["tool_result"],
        "one answer"
    );
}

async fn a_comment_whose_answer_was_lost_is_found_not_made_again(p: Profile) {
    let mut m = setup(p).await;
    m.task_created().await;
    let mut alice = m.app.online(&m.alice, m.tenant).await;
    // An identical comment Nexus made earlier for another request is not mistaken for it.
    let first = m
        .tool(
            &mut alice,
            "r1",
            "clickup.create_comment",
            json!({"task_id": "T1", "text": "On it"}),
            None,
        )
        .await;
    assert_eq!(first["ok"], true, "{first}");
    m.fake.lose_answer_next("/clickup/task/T1/comment");
    let second = m
        .tool(
            &mut alice,
            "r2",
            "clickup.create_comment",
            json!({"task_id": "T1", "text": "On it"}),
            None,
        )
        .await;
    let comments = m.fake.comments_on("T1");
    assert_eq!(comments.len(), 2, "one comment per request: {comments:?}");
    assert_eq!(
        second["result"],
        json!({"task_id": "T1", "comment_id": comments[0]["id"]}),
        "the newest comment is the one the lost answer was about: {second}"
    );
    assert_ne!(
        first["result"]["comment_id"],
        second["result"]["comment_id"]
    );
    let calls = m.fake.requests_to("/clickup/task/T1/comment");
    let methods: Vec<&str> = calls.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["POST", "POST", "GET"]);
}

async fn a_thread_whose_answer_was_lost_is_opened_once(p: Profile) {
    let mut m = setup(p).await;
    m.fake.lose_answer_next("/slack/chat.postMessage");
    let thread = m.task_created().await;
    let messages = m.fake.slack_messages();
    assert_eq!(messages.len(), 1, "one thread-opening post: {messages:?}");
    assert_eq!(thread, messages[0]["ts"].as_str().expect("ts"));
    let inbox = m.inbox(&m.alice).await;
    assert_eq!(kinds(&inbox), ["task_assigned"]);
    assert_eq!(inbox[0].1["mapping"]["slack_thread_ts"], thread.as_str());
    // The job that opened it is done, not dead: its lost answer cost one attempt.
    let again = m
        .clickup("taskStatusUpdated", "T1", history("h2", "183", None))
        .await;
    assert_eq!(again.status, JobStatus::Done);
    assert_eq!(m.fake.slack_messages().len(), 1);
}
