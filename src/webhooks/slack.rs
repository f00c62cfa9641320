//! `POST /webhooks/slack[/{id}]`: Slack Events API.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use super::signature::{SlackSigError, verify_slack};
use super::{Rejection, accept, answer, body, source_by_id, trace_id};
use crate::http::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;
use crate::store::{Source, SourceKind};

pub const KIND: &str = "slack.event";

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    team_id: Option<String>,
    event_id: Option<String>,
    challenge: Option<String>,
}

pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    answer("slack", handle(&state, None, &headers, raw).await)
}

pub async fn receive_for(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<serde_json::Value>, ApiError> {
    answer("slack", handle(&state, Some(&id), &headers, raw).await)
}

fn parse(raw: &[u8]) -> Result<Envelope, Rejection> {
    serde_json::from_slice(raw)
        .map_err(|e| Rejection::Malformed(format!("not a Slack event envelope: {e}")))
}

async fn handle(
    state: &AppState,
    path_id: Option<&str>,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<serde_json::Value>, Rejection> {
    let raw = body(raw)?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let (ts, sig) = (
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
    );
    let now_s = state.queue.clock().now_ms() / 1000;
    let verifies = |s: &Source| verify_slack(s.secret.expose(), ts, sig, &raw, now_s);

    // Which source signs this? The URL says, or the payload's team (any Slack source
    // for `url_verification`, which names no team).
    let candidates: Vec<Source> = match path_id {
        Some(id) => vec![source_by_id(state, id, SourceKind::Slack).await?],
        None => {
            let env = parse(&raw)?;
            match (env.kind.as_str(), env.team_id) {
                ("url_verification", _) => {
                    state
                        .store
                        .list_sources(Some(SourceKind::Slack), None)
                        .await?
                }
                (_, Some(team)) => state
                    .store
                    .find_source(SourceKind::Slack, &team)
                    .await?
                    .into_iter()
                    .collect(),
                (_, None) => return Err(Rejection::Malformed("the event has no team_id".into())),
            }
        }
    };
    if candidates.is_empty() {
        return Err(Rejection::UnknownSource(
            "no Slack source is registered for this team".into(),
        ));
    }
    let mut last = SlackSigError::Mismatch;
    let mut source = None;
    for s in candidates {
        match verifies(&s) {
            Ok(()) => {
                source = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let source = source.ok_or_else(|| Rejection::Signature(last.to_string()))?;

    let env = parse(&raw)?;
    match env.kind.as_str() {
        "url_verification" => {
            let challenge = env
                .challenge
                .ok_or_else(|| Rejection::Malformed("no challenge".into()))?;
            Ok(ApiJson(
                json!({ "challenge": challenge, "status": "verified" }),
            ))
        }
        "event_callback" => {
            let event_id = env
                .event_id
                .filter(|id| !id.is_empty() && id.len() <= 128)
                .ok_or_else(|| Rejection::Malformed("event_callback without event_id".into()))?;
            accept(state, &source, KIND, event_id, &raw, trace_id(headers)).await
        }
        // app_rate_limited and future envelope types: acknowledged, nothing to do.
        _ => Ok(ApiJson(json!({ "status": "ignored" }))),
    }
}
