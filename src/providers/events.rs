//! What Slack and ClickUp post to Nexus's webhooks. One type per provider: the webhook
//! handler parses it to route and dedupe, the job stores the raw body (so a replay sees
//! exactly what arrived), and the processor parses the same type from it. Ids are
//! parsed here, so a malformed one is refused at the webhook.

use nexus_proto::{ClickUpTaskId, ClickUpUserId, SlackTs, SlackUserId};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// A Slack Events API request body.
#[derive(Debug, Deserialize)]
pub struct SlackEnvelope {
    /// `event_callback`, `url_verification`, `app_rate_limited`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub team_id: Option<String>,
    pub event_id: Option<String>,
    /// `url_verification` only.
    pub challenge: Option<String>,
    /// `event_callback` only; read by the job ([`SlackEnvelope::event`]), so the webhook
    /// only checks that it is JSON.
    event: Option<Box<RawValue>>,
    /// Slack's legacy verification token, a credential: noted, never kept.
    #[serde(default, rename = "token")]
    legacy_token: Option<serde::de::IgnoredAny>,
}

impl SlackEnvelope {
    /// Whether the body carries Slack's legacy verification `token` (to be dropped).
    pub fn has_legacy_token(&self) -> bool {
        self.legacy_token.is_some()
    }

    /// The event, or `None` for one of a shape Nexus does not read (`user_change` and
    /// `team_join` carry a user object, not an id; a malformed id): acknowledged and
    /// ignored, not refused — Slack retries a refusal and, after enough of them, turns
    /// the app's event subscription off.
    pub fn event(&self) -> Option<SlackEvent> {
        serde_json::from_str(self.event.as_ref()?.get()).ok()
    }
}

#[derive(Debug, Deserialize)]
pub struct SlackEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub subtype: Option<String>,
    /// A channel id for messages; an object `{id, name}` for `channel_created` (and
    /// other shapes in events Nexus ignores): parsed by the processor, which knows the kind.
    pub channel: Option<Value>,
    pub user: Option<SlackUserId>,
    pub bot_id: Option<String>,
    #[serde(default)]
    pub text: String,
    pub ts: Option<SlackTs>,
    pub thread_ts: Option<SlackTs>,
}

/// A ClickUp webhook body.
#[derive(Debug, Deserialize)]
pub struct ClickUpWebhook {
    /// `taskCreated`, `taskCommentPosted`, `listUpdated`, …
    pub event: String,
    /// Task events only.
    #[serde(default, deserialize_with = "blank_as_none")]
    pub task_id: Option<ClickUpTaskId>,
    pub webhook_id: String,
    #[serde(default)]
    pub history_items: Vec<HistoryItem>,
}

#[derive(Debug, Deserialize)]
pub struct HistoryItem {
    /// Identifies the change; a retried delivery repeats it.
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    #[serde(default)]
    pub user: Option<ClickUpUser>,
    #[serde(default)]
    pub comment: Option<ClickUpComment>,
}

#[derive(Debug, Deserialize)]
pub struct ClickUpUser {
    pub id: ClickUpUserId,
    #[serde(default)]
    pub username: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ClickUpComment {
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    #[serde(default)]
    pub text_content: Option<String>,
    #[serde(default)]
    pub comment_text: Option<String>,
}

/// ClickUp ids arrive as numbers or strings; both become the same text.
fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(super::clickup_id_text(&Value::deserialize(d)?))
}

/// An empty `task_id` is no task, as a missing one is.
fn blank_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ClickUpTaskId>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        v => ClickUpTaskId::deserialize(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clickup_ids_may_be_numbers_and_a_blank_task_is_no_task() {
        let hook: ClickUpWebhook = serde_json::from_str(
            r#"{"event": "taskCreated", "task_id": "86a1", "webhook_id": "wh",
                "history_items": [{"id": 2800763136717140857, "user": {"id": 183}}]}"#,
        )
        .unwrap();
        assert_eq!(hook.task_id.unwrap().as_str(), "86a1");
        assert_eq!(hook.history_items[0].id, "2800763136717140857");
        assert_eq!(
            hook.history_items[0].user.as_ref().unwrap().id.as_str(),
            "183"
        );
        for blank in [r#""task_id": "","#, r#""task_id": null,"#, ""] {
            let body = format!(r#"{{"event": "listUpdated", {blank} "webhook_id": "wh"}}"#);
            let hook: ClickUpWebhook = serde_json::from_str(&body).unwrap();
            assert!(hook.task_id.is_none(), "{body}");
        }
        let odd = r#"{"event": "taskCreated", "task_id": "a/b", "webhook_id": "wh"}"#;
        assert!(serde_json::from_str::<ClickUpWebhook>(odd).is_err());
    }
}
