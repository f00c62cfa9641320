//! The Slack Web API: posting messages (`chat.postMessage`).

use nexus_proto::{SlackChannelId, SlackTs};
use reqwest::Url;
use serde::Serialize;
use serde_json::{Value, json};

use super::{ProviderError, call, endpoint};
use crate::store::Secret;

const NAME: &str = "Slack";

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

    pub async fn post_message(
        &self,
        token: &Secret,
        channel: &SlackChannelId,
        text: &str,
        thread_ts: Option<&SlackTs>,
    ) -> Result<Posted, ProviderError> {
        let mut body = json!({ "channel": channel, "text": text });
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
