//! What Slack and ClickUp post to Nexus's webhooks. One type per provider: the webhook
//! handler parses it to route and dedupe, the job stores the raw body (so a replay sees
//! exactly what arrived), and the processor parses the same type from it.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

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
    /// `event_callback` only.
    pub event: Option<SlackEvent>,
}

#[derive(Debug, Deserialize)]
pub struct SlackEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub subtype: Option<String>,
    /// A channel id for messages; an object `{id, name}` for `channel_created`.
    pub channel: Option<Value>,
    pub user: Option<String>,
    pub bot_id: Option<String>,
    #[serde(default)]
    pub text: String,
    pub ts: Option<String>,
    pub thread_ts: Option<String>,
}

/// A ClickUp webhook body.
#[derive(Debug, Deserialize)]
pub struct ClickUpWebhook {
    /// `taskCreated`, `taskCommentPosted`, `listUpdated`, …
    pub event: String,
    pub task_id: Option<String>,
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
    #[serde(deserialize_with = "id_text")]
    pub id: String,
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
