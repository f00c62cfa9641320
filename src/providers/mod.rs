//! Clients for the Slack Web API and the ClickUp API v2: what the mirror and the tools
//! call. Every failure is classified once, here, as worth retrying or not.

mod clickup;
pub mod events;
mod slack;

pub use clickup::{ClickUpApi, ClickUpTask, id_text as clickup_id_text};
pub use slack::{Posted, SlackApi};
/// Response parsing, for `crate::fuzzing`.
pub(crate) use {clickup::comment_id, clickup::task, slack::posted};

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde_json::Value;

use crate::config::ProviderOpts;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// 5xx, 429, timeouts, connection failures: try again later.
    #[error("{provider} is unavailable: {message}")]
    Transient {
        provider: &'static str,
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// 4xx and API-level refusals (`channel_not_found`): retrying cannot help.
    #[error("{provider} refused the request: {message}")]
    Permanent {
        provider: &'static str,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    #[error("invalid {0} API url: {1}")]
    Url(&'static str, String),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Both clients, sharing one connection pool.
#[derive(Clone)]
pub struct Providers {
    pub slack: SlackApi,
    pub clickup: ClickUpApi,
    /// For operators' own endpoints (cost alert webhooks): same timeouts, no redirects.
    pub http: reqwest::Client,
}

impl Providers {
    pub fn new(opts: &ProviderOpts) -> Result<Providers, ProviderSetupError> {
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("nexus/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the tenant's token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Providers {
            slack: SlackApi::new(http.clone(), base_url("Slack", &opts.slack_api_url)?),
            clickup: ClickUpApi::new(http.clone(), base_url("ClickUp", &opts.clickup_api_url)?),
            http,
        })
    }
}

fn base_url(name: &'static str, s: &str) -> Result<Url, ProviderSetupError> {
    let url = Url::parse(s).map_err(|e| ProviderSetupError::Url(name, e.to_string()))?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(ProviderSetupError::Url(
            name,
            format!("{s:?} is not an http(s) base url"),
        ));
    }
    Ok(url)
}

/// `base` with `segments` appended, each percent-encoded (ids come from webhooks).
fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// Sends the request and returns its JSON body, or the classified failure.
async fn call(provider: &'static str, req: RequestBuilder) -> Result<Value, ProviderError> {
    let resp = req.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else {
            "could not be reached"
        };
        ProviderError::Transient {
            provider,
            message: format!("{what} ({})", e.without_url()),
            retry_after_ms: None,
        }
    })?;
    let status = resp.status();
    refused(provider, status, resp.headers())?;
    let body = read_bounded(provider, resp).await?;
    answer(provider, status, &body)
}

/// A status that is worth a retry, classified before any body is read.
pub(crate) fn refused(
    provider: &'static str,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<(), ProviderError> {
    let transient = |message: String| ProviderError::Transient {
        provider,
        message,
        retry_after_ms: retry_after_ms(headers),
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(transient("rate limited (429)".into()));
    }
    if status.is_server_error() {
        return Err(transient(format!("HTTP {status}")));
    }
    Ok(())
}

/// The JSON body of a response [`refused`] let through, or the classified failure.
pub(crate) fn answer(
    provider: &'static str,
    status: StatusCode,
    body: &[u8],
) -> Result<Value, ProviderError> {
    if status.is_client_error() || !status.is_success() {
        return Err(ProviderError::Permanent {
            provider,
            message: format!("HTTP {status}: {}", excerpt(body)),
        });
    }
    serde_json::from_slice(body).map_err(|_| ProviderError::Transient {
        provider,
        message: format!("the response is not JSON: {}", excerpt(body)),
        retry_after_ms: None,
    })
}

/// Largest response body read from a provider (a ClickUp task with many custom fields is
/// tens of KiB); a larger one is refused rather than held in memory.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

async fn read_bounded(
    provider: &'static str,
    mut resp: Response,
) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > MAX_RESPONSE_BYTES => {
                return Err(ProviderError::Permanent {
                    provider,
                    message: format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(ProviderError::Transient {
                    provider,
                    message: format!("the response was cut off ({})", e.without_url()),
                    retry_after_ms: None,
                });
            }
        }
    }
}

/// `Retry-After` in seconds, as Slack and ClickUp send it.
fn retry_after_ms(headers: &HeaderMap) -> Option<u64> {
    retry_after_text(headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?)
}

/// Longest wait a provider's `Retry-After` can impose on a job (it is the provider's
/// word; a huge one would park work for good).
const MAX_RETRY_AFTER_S: u64 = 15 * 60;

fn retry_after_text(value: &str) -> Option<u64> {
    let s: u64 = value.trim().parse().ok()?;
    Some(s.min(MAX_RETRY_AFTER_S) * 1000)
}

/// The start of a provider's error body, for messages (never a token: we don't send them back).
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        assert_eq!(retry_after_text(" 30 "), Some(30_000));
        assert_eq!(retry_after_text("99999999999999"), Some(900_000));
        assert_eq!(retry_after_text(&u64::MAX.to_string()), Some(900_000));
        assert_eq!(retry_after_text("soon"), None);
    }
}
