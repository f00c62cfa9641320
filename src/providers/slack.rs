//! The Slack Web API: posting messages (`chat.postMessage`), and finding a post again by
//! the write it was made for (`conversations.history` / `conversations.replies`).

use nexus_proto::{SlackChannelId, SlackTs};
use reqwest::Url;
use serde::Serialize;
use serde_json::{Value, json};

use super::{ProviderError, call, endpoint};
use crate::store::Secret;

const NAME: &str = "Slack";

/// The message `metadata` event type Nexus's posts carry, with the write's op key as
/// payload: how a retry finds a post whose result was never recorded.
const WRITE_EVENT: &str = "nexus_write";

/// Pages of history read looking for a post (200 messages each).
const MAX_PAGES: usize = 5;

#[derive(Clone)]
pub struct SlackApi {
    http: reqwest::Client,
    base: Url,
}

/// A message Slack accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Posted {
    pub channel: SlackChannelId,
    pub ts: SlackTs,
}

impl SlackApi {
    pub(super) fn new(http: reqwest::Client, base: Url) -> SlackApi {
        SlackApi { http, base }
    }

    /// Posts `text`, tagged with `op_key` (see [`SlackApi::find_post`]).
    pub async fn post_message(
        &self,
        token: &Secret,
        channel: &SlackChannelId,
        text: &str,
        thread_ts: Option<&SlackTs>,
        op_key: &str,
    ) -> Result<Posted, ProviderError> {
        let mut body = json!({
            "channel": channel,
            "text": text,
            "metadata": { "event_type": WRITE_EVENT, "event_payload": { "op_key": op_key } },
        });
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        let req = self
            .http
            .post(endpoint(&self.base, &["chat.postMessage"]))
            .bearer_auth(token.expose())
            .json(&body);
        posted(call(NAME, req).await?)
    }
}

impl SlackApi {
    /// The message posted for `op_key` in `channel` (in the thread `thread_ts`, when
    /// given) no earlier than `since_ms`, if Slack has one.
    pub async fn find_post(
        &self,
        token: &Secret,
        channel: &SlackChannelId,
        thread_ts: Option<&SlackTs>,
        since_ms: i64,
        op_key: &str,
    ) -> Result<Option<Posted>, ProviderError> {
        let method = if thread_ts.is_some() {
            "conversations.replies"
        } else {
            "conversations.history"
        };
        let oldest = format!(
            "{}.{:03}000",
            since_ms.div_euclid(1000),
            since_ms.rem_euclid(1000)
        );
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("channel", channel.as_str()),
                ("oldest", oldest.as_str()),
                ("inclusive", "true"),
                ("limit", "200"),
                ("include_all_metadata", "true"),
            ];
            if let Some(ts) = thread_ts {
                query.push(("ts", ts.as_str()));
            }
            if !cursor.is_empty() {
                query.push(("cursor", cursor.as_str()));
            }
            let req = self
                .http
                .get(endpoint(&self.base, &[method]))
                .bearer_auth(token.expose())
                .query(&query);
            let page = ok(call(NAME, req).await?)?;
            if let Some(ts) = posted_for(&page, op_key) {
                return Ok(Some(Posted {
                    channel: channel.clone(),
                    ts,
                }));
            }
            match page["response_metadata"]["next_cursor"].as_str() {
                Some(next) if !next.is_empty() => cursor = next.to_owned(),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// The ts of the message in a history page whose metadata names `op_key`.
fn posted_for(page: &Value, op_key: &str) -> Option<SlackTs> {
    page["messages"].as_array()?.iter().find_map(|m| {
        let meta = &m["metadata"];
        let ours = meta["event_type"] == WRITE_EVENT && meta["event_payload"]["op_key"] == op_key;
        ours.then(|| m["ts"].as_str()?.parse().ok()).flatten()
    })
}

/// What `chat.postMessage` answered.
pub(crate) fn posted(answer: Value) -> Result<Posted, ProviderError> {
    serde_json::from_value(ok(answer)?).map_err(|e| ProviderError::Transient {
        provider: NAME,
        message: format!("chat.postMessage answered without a channel and ts: {e}"),
        retry_after_ms: None,
    })
}

/// Slack answers 200 with `"ok": false` for most failures; `ratelimited` and
/// server-side hiccups are worth a retry, everything else (bad channel, bad token) is not.
fn ok(answer: Value) -> Result<Value, ProviderError> {
    if answer["ok"].as_bool() == Some(true) {
        return Ok(answer);
    }
    let error = answer["error"]
        .as_str()
        .unwrap_or("unknown_error")
        .to_owned();
    match error.as_str() {
        "ratelimited"
        | "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout" => Err(ProviderError::Transient {
            provider: NAME,
            message: error,
            retry_after_ms: None,
        }),
        _ => Err(ProviderError::Permanent {
            provider: NAME,
            message: error,
        }),
    }
}
