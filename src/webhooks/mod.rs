//! Webhook intake: verify, dedupe, commit a job, answer. Nothing else happens in the
//! request — processing is the queue's — so the answer is fast and flat under load.
//!
//! The contract (DESIGN §10): 2xx only after the job is committed; a duplicate is 200
//! without a second job; bad signature 401, malformed 400, too large 413, storage
//! down 503 — never 200 for anything not stored.

mod clickup;
mod ingest;
mod signature;
mod slack;

pub use clickup::KIND as CLICKUP_KIND;
pub use signature::{hmac_hex, verify_slack};
pub use slack::KIND as SLACK_KIND;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::http::{ApiError, ApiJson};
use crate::queue::Processors;
use crate::state::AppState;
use crate::store::{Enqueued, NewJob, Source, StoreError};

/// Slack and ClickUp payloads are small; 1 MiB leaves room and bounds memory.
const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/slack", post(slack::receive))
        .route("/slack/{id}", post(slack::receive_for))
        .route("/clickup", post(clickup::receive))
        .route("/clickup/{id}", post(clickup::receive_for))
        .route("/ingest/{id}", post(ingest::receive))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
}

/// The processors this module brings: ingest rules deliver straight to inboxes.
pub fn processors() -> Processors {
    let mut p = Processors::default();
    p.register(ingest::KIND, Arc::new(ingest::Deliver));
    p
}

/// Why a webhook was refused; also the `reason` label of the rejection metric.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    Signature(String),
    #[error("{0}")]
    UnknownSource(String),
    #[error("{0}")]
    Malformed(String),
    #[error("the body is larger than 1 MiB")]
    TooLarge,
    #[error("storage is unavailable; retry later")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl Rejection {
    fn reason(&self) -> &'static str {
        match self {
            Rejection::Signature(_) => "bad_signature",
            Rejection::UnknownSource(_) => "unknown_source",
            Rejection::Malformed(_) => "malformed",
            Rejection::TooLarge => "too_large",
            Rejection::Unavailable => "unavailable",
            Rejection::Internal => "internal",
        }
    }

    fn into_api(self) -> ApiError {
        let (status, code) = match &self {
            Rejection::Signature(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
            Rejection::UnknownSource(_) => (StatusCode::UNAUTHORIZED, "unknown_source"),
            Rejection::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
            Rejection::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Rejection::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Rejection::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, self.to_string())
    }
}

impl From<crate::queue::EnqueueError> for Rejection {
    fn from(e: crate::queue::EnqueueError) -> Rejection {
        match e {
            crate::queue::EnqueueError::Store(e) => match &*e {
                e if e.is_transient() => {
                    tracing::warn!(error = %e, "webhook refused: database unavailable");
                    metrics::counter!("nexus_database_errors_total").increment(1);
                    Rejection::Unavailable
                }
                other => {
                    tracing::error!(error = %other, "webhook refused: storage error");
                    Rejection::Internal
                }
            },
            crate::queue::EnqueueError::Stopped => Rejection::Unavailable,
        }
    }
}

impl From<StoreError> for Rejection {
    fn from(e: StoreError) -> Rejection {
        match e {
            err if err.is_transient() => {
                tracing::warn!(error = %err, "webhook refused: database unavailable");
                metrics::counter!("nexus_database_errors_total").increment(1);
                Rejection::Unavailable
            }
            other => {
                tracing::error!(error = %other, "webhook refused: storage error");
                Rejection::Internal
            }
        }
    }
}

/// Counts the outcome and shapes the response.
fn answer(
    source: &'static str,
    result: Result<ApiJson<serde_json::Value>, Rejection>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    match result {
        Ok(body) => {
            let outcome = body.0["status"].as_str().unwrap_or("accepted").to_owned();
            metrics::counter!("nexus_webhooks_total", "source" => source, "outcome" => outcome)
                .increment(1);
            Ok(body)
        }
        Err(r) => {
            tracing::info!(source, reason = r.reason(), detail = %r, "webhook rejected");
            metrics::counter!("nexus_webhooks_rejected_total", "source" => source, "reason" => r.reason()).increment(1);
            Err(r.into_api())
        }
    }
}

fn body(b: Result<axum::body::Bytes, BytesRejection>) -> Result<axum::body::Bytes, Rejection> {
    b.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Rejection::TooLarge,
        _ => Rejection::Malformed(e.body_text()),
    })
}

/// The request id tags the job and every event it produces.
fn trace_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.replace('-', ""))
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Commits the job; answers only once it is durable.
async fn accept(
    state: &AppState,
    source: &Source,
    kind: &str,
    dedupe_key: String,
    payload: &[u8],
    trace_id: Option<String>,
) -> Result<ApiJson<serde_json::Value>, Rejection> {
    let payload = String::from_utf8(payload.to_vec())
        .map_err(|_| Rejection::Malformed("the body is not UTF-8".into()))?;
    let job = NewJob {
        tenant_id: source.tenant_id,
        source_id: Some(source.id),
        source: source.kind.as_str().to_owned(),
        kind: kind.to_owned(),
        dedupe_key,
        payload,
        trace_id,
        max_attempts: state.queue.max_attempts(),
        run_at: 0,
    };
    let (status, id): (&str, Uuid) = match state.queue.enqueue(job).await? {
        Enqueued::Created(id) => ("accepted", id),
        Enqueued::Duplicate(id) => ("duplicate", id),
    };
    Ok(ApiJson(json!({ "status": status, "job_id": id })))
}

/// A source named in the URL must exist and be of the endpoint's kind.
async fn source_by_id(
    state: &AppState,
    id: &str,
    kind: crate::store::SourceKind,
) -> Result<Source, Rejection> {
    let unknown = || Rejection::UnknownSource(format!("no {} source with this id", kind.as_str()));
    let id: Uuid = id.parse().map_err(|_| unknown())?;
    match state.source(id).await {
        Ok(s) if s.kind == kind => Ok(s),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(unknown()),
        Err(e) => Err(e.into()),
    }
}
