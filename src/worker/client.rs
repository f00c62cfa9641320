//! The worker's calls to a node, as the agent whose credentials it holds: a token by
//! client credentials (fetched again before it expires, or after a 401), then bearer
//! requests. Failures are sorted by what a retry can change.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::store::Secret;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer: the node is down, unreachable or too slow.
    #[error("the node did not answer: {0}")]
    Unreachable(String),
    /// The node answered with an error.
    #[error("{status} {message}")]
    Refused { status: StatusCode, message: String },
}

impl CallError {
    /// Whether trying the same request again later can succeed.
    pub fn transient(&self) -> bool {
        match self {
            CallError::Unreachable(_) => true,
            CallError::Refused { status, .. } => {
                status.is_server_error()
                    || matches!(
                        *status,
                        StatusCode::REQUEST_TIMEOUT
                            | StatusCode::TOO_MANY_REQUESTS
                            | StatusCode::UNAUTHORIZED
                    )
            }
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            CallError::Refused { status, .. } => Some(*status),
            CallError::Unreachable(_) => None,
        }
    }
}

/// The agent's client credentials.
#[derive(Clone)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
}

struct Token {
    value: String,
    renew_at: Instant,
}

pub struct Node {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    /// Never held across an `.await`: two tasks may fetch a token at once, which costs
    /// one extra request, never a wait.
    token: Mutex<Option<Token>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl Node {
    pub fn new(base: &str, credentials: Credentials, timeout: Duration) -> Result<Node, CallError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        Ok(Node {
            http,
            base: base.trim_end_matches('/').to_owned(),
            credentials,
            token: Mutex::new(None),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn cached_token(&self) -> Option<String> {
        let guard = self.token.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|t| t.renew_at > Instant::now())
            .map(|t| t.value.clone())
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A valid access token, fetched when the cached one is (nearly) expired.
    pub async fn token(&self) -> Result<String, CallError> {
        if let Some(token) = self.cached_token() {
            return Ok(token);
        }
        let req = self
            .http
            .post(self.url("/auth/token"))
            .basic_auth(
                &self.credentials.client_id,
                Some(self.credentials.client_secret.expose()),
            )
            .form(&[("grant_type", "client_credentials")]);
        let answer: TokenAnswer = decode(send(req).await?).await?;
        // Renewed at 80 % of its life, so no request carries a token about to expire.
        let life = Duration::from_secs(answer.expires_in).mul_f64(0.8);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(Token {
            value: answer.access_token.clone(),
            renew_at: Instant::now() + life,
        });
        Ok(answer.access_token)
    }

    /// A token fetched now, not the cached one (the answer to `token_expiring`).
    pub async fn fresh_token(&self) -> Result<String, CallError> {
        self.forget_token();
        self.token().await
    }

    /// Sends a request built by `build` with the agent's token; after a 401 fetches a
    /// new token and sends it once more.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<reqwest::Response, CallError> {
        let mut renewed = false;
        loop {
            let token = self.token().await?;
            let req = build(self.http.request(method.clone(), self.url(path))).bearer_auth(token);
            match send(req).await {
                Err(e) if !renewed && e.status() == Some(StatusCode::UNAUTHORIZED) => {
                    self.forget_token();
                    renewed = true;
                }
                other => return other,
            }
        }
    }

    /// [`Node::call`], decoding a JSON answer.
    pub async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<T, CallError> {
        decode(self.call(method, path, build).await?).await
    }
}

/// Sends `req`; a non-2xx answer becomes [`CallError::Refused`] with the node's message.
async fn send(req: RequestBuilder) -> Result<reqwest::Response, CallError> {
    let resp = req
        .send()
        .await
        .map_err(|e| CallError::Unreachable(without_url(e)))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Err(CallError::Refused {
        status,
        message: error_message(&body).unwrap_or_default(),
    })
}

async fn decode<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, CallError> {
    let status = resp.status();
    resp.json().await.map_err(|e| CallError::Refused {
        status,
        message: format!("unreadable answer: {}", without_url(e)),
    })
}

/// reqwest's message without the URL (kept short for logs and the state file).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// `{"error":{"code","message","details"}}` (or OAuth's `{"error","error_description"}`)
/// as one line.
pub fn error_message(value: &Value) -> Option<String> {
    let error = value.get("error")?;
    if let Some(code) = error.as_str() {
        let description = value.get("error_description").and_then(Value::as_str);
        return Some(format!("{code}: {}", description.unwrap_or("")));
    }
    let code = error.get("code").and_then(Value::as_str).unwrap_or("error");
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    Some(match error.get("details").filter(|d| !d.is_null()) {
        Some(d) => format!("{code}: {message} {d}"),
        None => format!("{code}: {message}"),
    })
}
