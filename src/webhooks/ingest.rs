//! `POST /webhooks/ingest/{id}`: generic senders (put.io transfer notifications and the
//! like), authenticated by HMAC (`X-Nexus-Signature: sha256=<hex>`) or a bearer token,
//! and delivered by the source's rule to an agent or an alias as an inbox event.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::signature::verify_hex;
use super::{Rejection, accept, answer, body, sha256_hex, source_by_id, trace_id};
use crate::bus::NewEvent;
use crate::http::{ApiError, ApiJson, ApiPath};
use crate::queue::{Done, JobError, Processor};
use crate::state::AppState;
use crate::store::{Job, SourceKind};

pub const KIND: &str = "ingest.deliver";

pub async fn receive(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<Value>, ApiError> {
    answer("ingest", handle(&state, &id, &headers, raw).await)
}

async fn handle(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<Value>, Rejection> {
    let raw = body(raw)?;
    let source = source_by_id(state, id, SourceKind::Ingest).await?;
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let secret = source.secret.expose();
    let by_hmac = headers
        .get("x-nexus-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .is_some_and(|hex| verify_hex(secret, &[&raw], hex));
    let by_token = header(header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| bool::from(t.trim().as_bytes().ct_eq(secret.as_bytes())));
    if !by_hmac && !by_token {
        return Err(Rejection::Signature(
            "sign the body (X-Nexus-Signature: sha256=<hex HMAC>) or send the source's token as Bearer".into(),
        ));
    }
    serde_json::from_slice::<Value>(&raw)
        .map_err(|e| Rejection::Malformed(format!("the body is not JSON: {e}")))?;
    let key = match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        Some(k) if !k.is_empty() && k.len() <= 200 => k.to_owned(),
        Some(_) => {
            return Err(Rejection::Malformed(
                "Idempotency-Key must be 1–200 characters".into(),
            ));
        }
        None => sha256_hex(&raw),
    };
    accept(
        state,
        &source,
        KIND,
        format!("{}:{key}", source.id),
        &raw,
        trace_id(headers),
    )
    .await
}

/// Delivers an ingest job's payload to the agents its source's rule names.
pub struct Deliver;

impl Processor for Deliver {
    fn process(&self, state: AppState, job: Job) -> BoxFuture<'static, Result<Done, JobError>> {
        deliver(state, job).boxed()
    }
}

async fn deliver(state: AppState, job: Job) -> Result<Done, JobError> {
    let payload: Value = serde_json::from_str(&job.payload).map_err(|e| {
        JobError::permanent("unparseable", format!("stored payload is not JSON: {e}"))
    })?;
    let source_id = job
        .source_id
        .ok_or_else(|| JobError::permanent("unknown_source", "the job's source was removed"))?;
    let source = state.source(source_id).await?;
    let rule = source
        .rule
        .ok_or_else(|| JobError::permanent("no_rule", "the ingest source has no delivery rule"))?;
    let mut agents = Vec::new();
    if let Some(agent) = rule.to_agent {
        agents.push(agent);
    }
    if let Some(alias) = &rule.to_alias {
        agents.extend(state.store.alias_agent_ids(source.tenant_id, alias).await?);
    }
    if agents.is_empty() {
        return Done::because("no_recipients");
    }
    for agent in agents {
        let event = NewEvent {
            kind: rule.event,
            data: json!({ "source": source.external_id, "payload": payload }),
            trace_id: job.trace_id.clone(),
            // A retried job finds its earlier deliveries instead of repeating them.
            idempotency_key: Some(format!("job:{}", job.id)),
        };
        state
            .hub
            .emit_to_agent(agent, event)
            .await
            .map_err(|e| JobError::transient(e.to_string()))?;
    }
    Ok(Done::default())
}
