//! Slack events in: thread replies feed the task's agents, mentions wake agents and
//! alias members, bots and our own messages are ignored, new channels are recorded.

use nexus::store::JobStatus;
use serde_json::json;

use super::{NEXUS_SLACK_USER, kinds, setup};
use crate::agent_client::event;
use crate::both_profiles;
use crate::helpers::Profile;

both_profiles!(
    a_thread_reply_feeds_the_task_agents_once,
    an_alias_mention_wakes_each_member_once,
    bots_edits_our_own_messages_and_unread_shapes_are_ignored,
    created_channels_are_recorded_for_operators,
);

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

async fn bots_edits_our_own_messages_and_unread_shapes_are_ignored(p: Profile) {
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
    // Events of other shapes are acknowledged, not refused (Slack would retry them).
    let user_change = json!({"type": "user_change", "user": {"id": "U2", "name": "bob"}});
    let odd_ts =
        json!({"type": "message", "channel": "C7", "user": "U2", "text": "hi", "ts": "yesterday"});
    for (i, event) in [bot, ours, edit, other_bot, user_change, odd_ts]
        .into_iter()
        .enumerate()
    {
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
