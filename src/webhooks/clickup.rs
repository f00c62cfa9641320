//! `POST /webhooks/clickup[/{id}]`: ClickUp webhooks, signed with `X-Signature`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde::Deserialize;

use super::signature::verify_hex;
use super::{Rejection, accept, answer, body, sha256_hex, source_by_id, trace_id};
use crate::http::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;
use crate::store::SourceKind;

pub const KIND: &str = "clickup.event";

#[derive(Deserialize)]
struct Payload {
    event: String,
    task_id: Option<String>,
    webhook_id: String,
    #[serde(default)]
    history_items: Vec<HistoryItem>,
}

#[derive(Deserialize)]
struct HistoryItem {
    id: serde_json::Value,
}

pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    answer("clickup", handle(&state, None, &headers, raw).await)
}

pub async fn receive_for(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    answer("clickup", handle(&state, Some(&id), &headers, raw).await)
}

fn parse(raw: &[u8]) -> Result<Payload, Rejection> {
    serde_json::from_slice(raw)
        .map_err(|e| Rejection::Malformed(format!("not a ClickUp webhook payload: {e}")))
}

async fn handle(
    state: &AppState,
    path_id: Option<&str>,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<serde_json::Value>, Rejection> {
    let raw = body(raw)?;
    let signature = headers
        .get("x-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Rejection::Signature("missing X-Signature".into()))?;
    let source = match path_id {
        Some(id) => source_by_id(state, id, SourceKind::Clickup).await?,
        None => {
            let webhook_id = parse(&raw)?.webhook_id;
            state
                .store
                .find_source(SourceKind::Clickup, &webhook_id)
                .await?
                .ok_or_else(|| {
                    Rejection::UnknownSource(
                        "no ClickUp source is registered for this webhook_id".into(),
                    )
                })?
        }
    };
    if !verify_hex(source.secret.expose(), &[&raw], signature) {
        return Err(Rejection::Signature("the signature does not match".into()));
    }
    let payload = parse(&raw)?;
    // ClickUp retries resend the same history items: they identify the delivery.
    let mut items: Vec<String> = payload
        .history_items
        .iter()
        .map(|h| match &h.id {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    items.sort_unstable();
    let dedupe_key = if items.is_empty() {
        format!(
            "{}:{}:{}:{}",
            payload.webhook_id,
            payload.event,
            payload.task_id.unwrap_or_default(),
            sha256_hex(&raw)
        )
    } else {
        format!("{}:{}", payload.webhook_id, items.join(","))
    };
    accept(state, &source, KIND, dedupe_key, &raw, trace_id(headers)).await
}
