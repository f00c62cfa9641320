//! The Slack Web API: posting messages (`chat.postMessage`).

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
    pub channel: String,
    pub ts: String,
}

impl SlackApi {
    pub(super) fn new(http: reqwest::Client, base: Url) -> SlackApi {
        SlackApi { http, base }
    }

    pub async fn post_message(
        &self,
        token: &Secret,
        channel: &str,
        text: &str,
        thread_ts: Option<&str>,
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
        let answer = ok(call(NAME, req).await?)?;
        match (answer["channel"].as_str(), answer["ts"].as_str()) {
            (Some(channel), Some(ts)) => Ok(Posted {
                channel: channel.to_owned(),
                ts: ts.to_owned(),
            }),
            _ => Err(ProviderError::Transient {
                provider: NAME,
                message: "chat.postMessage answered without channel and ts".into(),
                retry_after_ms: None,
            }),
        }
    }
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
