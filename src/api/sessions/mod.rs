//! `/api/sessions`: agents' sessions — uploaded whole or in parts by the agent itself
//! (its access token) or by an operator key naming the agent — listed, shown, and
//! their transcripts streamed back part by part.
//!
//! These routes read bodies of up to 7 MiB, so they are outside the API's request
//! bound (a slow upload is bounded by `--body-read-timeout`); each storage wait is
//! bounded by `--db-request-timeout` here instead.

mod caller;
mod upload;

pub use caller::Caller;
pub use upload::{MAX_TRANSCRIPT_BYTES, MAX_UPLOAD_BYTES};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use nexus_proto::{AgentId, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::upload::{Transcript, Upload};
use super::page::{PageQuery, time_id, time_id_cursor};
use crate::http::responses::{BadRequest, Conflict, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::{NewSession, Scope, Session, SessionFilter, SessionStatus, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show))
        .routes(routes!(transcript))
        .routes(routes!(put_part))
        .routes(routes!(complete))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
}

/// Runs a storage step within `--db-request-timeout`, else 503.
pub(super) async fn bounded<T>(
    state: &AppState,
    step: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, ApiError> {
    let bound = state.config.serve.db.request_timeout;
    match tokio::time::timeout(bound, step).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(_) => {
            crate::http::storage_timed_out("api", bound);
            Err(ApiError::unavailable(
                "storage did not answer in time; retry later",
            ))
        }
    }
}

fn raw(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over {MAX_UPLOAD_BYTES} bytes"),
        ),
        _ => ApiError::bad_request(e.body_text()),
    })
}

/// The agent a new session belongs to: the caller itself, or the agent an operator
/// key names (within its tenant).
async fn owner(
    state: &AppState,
    caller: &Caller,
    named: Option<Uuid>,
) -> Result<(AgentId, TenantId), ApiError> {
    match (caller, named) {
        (Caller::Agent { agent, tenant }, None) => Ok((*agent, *tenant)),
        (Caller::Agent { agent, tenant }, Some(id)) if id == *agent.as_uuid() => {
            Ok((*agent, *tenant))
        }
        (Caller::Agent { .. }, Some(_)) => Err(ApiError::forbidden(
            "an agent uploads its own sessions: leave out agent_id or give your own",
        )),
        (Caller::Operator(_), None) => Err(ApiError::invalid_fields([(
            "agent_id",
            "is required with an operator key".to_owned(),
        )])),
        (Caller::Operator(op), Some(id)) => {
            let agent = bounded(state, state.store.get_agent(AgentId::from_uuid(id))).await?;
            op.tenant(agent.tenant_id)
                .map_err(|_| ApiError::not_found("agent"))?;
            Ok((agent.id, agent.tenant_id))
        }
    }
}

/// What `POST /api/sessions` takes (the transcript whole, or `parts` to follow).
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // Documents the body; it is read field by field (see `upload::parse`).
pub struct SessionUpload {
    session_id: Uuid,
    /// Required with an operator key; an agent may leave it out (it is itself).
    agent_id: Option<AgentId>,
    /// What produced it: `claude-code`, `codex`, `custom`… (a–z, 0–9, `.`, `_`, `-`).
    #[schema(pattern = "^[a-z0-9._-]{1,64}$")]
    source: String,
    #[schema(value_type = String, format = DateTime)]
    started_at: String,
    #[schema(value_type = String, format = DateTime)]
    ended_at: String,
    /// Tokens per model (may be empty; at most 100 models, each once).
    usage: Vec<crate::store::ModelUsage>,
    #[schema(minimum = 0)]
    cost_usd: Option<f64>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    /// The whole transcript, at most 1 MiB (UTF-8 bytes); else give `parts`.
    transcript: Option<String>,
    /// Upload the transcript in this many parts instead (1–1024).
    #[schema(minimum = 1, maximum = 1024)]
    parts: Option<u32>,
}

/// Stores a finished session: uploaded whole it is `complete`; with `parts` it is
/// `uploading` until its parts are in and `POST …/complete` is called. The body may
/// be gzip (`Content-Encoding: gzip`); the limits apply to the decoded size.
#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    request_body = SessionUpload,
    responses(
        (status = 201, description = "Stored", body = Session),
        BadRequest, NotFound,
        (status = 409, description = "A session with this id exists (`conflict`; `details.session_id`); nothing changed", body = crate::http::ErrorBody),
        (status = 413, description = "The transcript is over 1 MiB, or the body over 7 MiB, decoded (`payload_too_large`)", body = crate::http::ErrorBody),
        (status = 415, description = "A Content-Encoding other than gzip (`unsupported_media_type`)", body = crate::http::ErrorBody),
        OperatorErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, ApiJson<Session>), ApiError> {
    caller.require(Scope::Write)?;
    let body = upload::decode(&headers, &raw(body)?, MAX_UPLOAD_BYTES, "body")?;
    let up: Upload = upload::parse(&body, state.clock.now_ms())?;
    let (agent, tenant) = owner(&state, &caller, up.agent_id).await?;
    let (whole, parts) = match up.transcript {
        Transcript::Whole(text) => {
            let part = tokio::task::spawn_blocking(move || upload::compress(1, text.as_bytes()))
                .await
                .map_err(|_| ApiError::internal())?;
            (Some(part), 1)
        }
        Transcript::Parts(n) => (None, n),
    };
    let new = NewSession {
        id: up.session_id,
        tenant_id: tenant,
        agent_id: agent,
        source: up.source,
        started_at: up.started_at,
        ended_at: up.ended_at,
        cost_usd: up.cost_usd,
        metadata: up.metadata,
        usage: up.usage,
        parts,
    };
    match bounded(&state, state.store.create_session(&new, whole.as_ref())).await {
        Err(e) if e.status == StatusCode::CONFLICT => {
            let mut e = ApiError::conflict(format!("session {} already exists", new.id));
            e.details = Some(json!({ "session_id": new.id }));
            return Err(e);
        }
        r => r?,
    }
    let stored = bounded(&state, state.store.get_session(new.id, None)).await?;
    Ok((StatusCode::CREATED, ApiJson(stored)))
}

/// The session if this caller may see it.
async fn visible(state: &AppState, caller: &Caller, id: Uuid) -> Result<Session, ApiError> {
    let s = bounded(state, state.store.get_session(id, caller.within())).await?;
    match caller.agent() {
        Some(own) if own != s.agent_id => Err(ApiError::not_found("session")),
        _ => Ok(s),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this agent's (an agent's token: its own, always).
    agent: Option<AgentId>,
    /// Only this tenant's (a tenant-bound key: its own, always).
    tenant: Option<TenantId>,
    /// Started at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// Started before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionPage {
    sessions: Vec<Session>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

fn instant(field: &'static str, v: Option<&str>) -> Result<Option<i64>, ApiError> {
    v.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.timestamp_millis())
            .map_err(|_| ApiError::invalid_fields([(field, "must be an RFC 3339 time".to_owned())]))
    })
    .transpose()
}

/// Sessions newest first (by `started_at`), with their usage; not their transcripts.
#[utoipa::path(
    get,
    path = "/sessions",
    tag = "sessions",
    params(ListQuery, PageQuery),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<SessionPage>, ApiError> {
    caller.require(Scope::Read)?;
    let page = q.page.page_by_text(time_id)?;
    if let (Caller::Operator(op), Some(t)) = (&caller, q.tenant) {
        op.tenant(t)?;
    }
    let filter = SessionFilter {
        tenant: q.tenant.or(caller.within()),
        agent: caller.agent().or(q.agent),
        from: instant("from", q.from.as_deref())?,
        to: instant("to", q.to.as_deref())?,
    };
    let mut sessions = bounded(
        &state,
        state.store.list_sessions(&filter, page.after, page.fetch()),
    )
    .await?;
    let next = page.finish(&mut sessions, |s| time_id_cursor(s.started_at, s.id));
    Ok(ApiJson(SessionPage {
        sessions,
        next_cursor: next,
    }))
}

/// One session with its usage; with `Accept: text/plain` (and not JSON), its
/// transcript instead, as `GET …/transcript` streams it.
#[utoipa::path(
    get,
    path = "/sessions/{id}",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "The session")),
    responses(
        (status = 200, description = "The session, or its transcript (`Accept: text/plain`)", content(
            (Session = "application/json"),
            (String = "text/plain"),
        )),
        BadRequest, NotFound, Conflict, OperatorErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let s = visible(&state, &caller, id).await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("text/plain") && !accept.contains("json") {
        return stream_transcript(state, s);
    }
    Ok(ApiJson(s).into_response())
}

/// The transcript of a complete session, streamed part by part as uploaded
/// (`Content-Length` is its whole size, so a cut-off download shows).
#[utoipa::path(
    get,
    path = "/sessions/{id}/transcript",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "The session")),
    responses(
        (status = 200, description = "The transcript", content_type = "text/plain", body = String),
        BadRequest, NotFound, Conflict, OperatorErrors,
    )
)]
pub async fn transcript(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let s = visible(&state, &caller, id).await?;
    stream_transcript(state, s)
}

/// The transcript, part by part: each read and decoded when the client is ready for it.
fn stream_transcript(state: AppState, s: Session) -> Result<Response, ApiError> {
    if s.status != SessionStatus::Complete {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_complete",
            "the session's parts are still being uploaded",
        ));
    }
    let length = s.transcript_bytes;
    let parts = stream::unfold((state, s, 1u32), |(state, s, n)| async move {
        if n > s.parts {
            return None;
        }
        let next = match state.store.session_part(&s, n).await {
            Ok(Some(gz)) => tokio::task::spawn_blocking(move || upload::decompress(&gz))
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r)
                .map(Bytes::from),
            Ok(None) => Err(std::io::Error::other(format!("part {n} is missing"))),
            Err(e) => Err(std::io::Error::other(e)),
        };
        if let Err(e) = &next {
            tracing::warn!(session_id = %s.id, part = n, error = %e, "transcript stream cut");
        }
        Some((next, (state, s, n + 1)))
    });
    let mut resp = Body::from_stream(parts).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(resp)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PartStored {
    session_id: Uuid,
    n: u32,
    /// Its decoded size.
    bytes: u64,
}

/// Stores part `n` (1…`parts`) of an uploading session's transcript, as the raw body
/// (gzip accepted; at most 1 MiB decoded). Sending a part again replaces it.
#[utoipa::path(
    put,
    path = "/sessions/{id}/parts/{n}",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "The session"), ("n" = u32, Path, description = "The part, from 1")),
    request_body(content = String, content_type = "text/plain"),
    responses(
        (status = 200, description = "Stored", body = PartStored),
        BadRequest, NotFound,
        (status = 409, description = "The session is complete (`conflict`)", body = crate::http::ErrorBody),
        (status = 413, description = "The part is over 1 MiB decoded (`payload_too_large`)", body = crate::http::ErrorBody),
        OperatorErrors,
    )
)]
pub async fn put_part(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, n)): ApiPath<(Uuid, u32)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ApiJson<PartStored>, ApiError> {
    caller.require(Scope::Write)?;
    let text = upload::decode(&headers, &raw(body)?, MAX_TRANSCRIPT_BYTES, "part")?;
    let s = visible(&state, &caller, id).await?;
    if !(1..=s.parts).contains(&n) {
        let why = format!("this session has parts 1 to {}", s.parts);
        return Err(ApiError::invalid_fields([("n", why)]));
    }
    let part = tokio::task::spawn_blocking(move || upload::compress(n, &text))
        .await
        .map_err(|_| ApiError::internal())?;
    let bytes = part.bytes;
    if !bounded(&state, state.store.put_session_part(&s, &part)).await? {
        return Err(ApiError::conflict(
            "the session is complete: its parts can no longer change",
        ));
    }
    Ok(ApiJson(PartStored {
        session_id: id,
        n,
        bytes,
    }))
}

/// Completes a session uploaded in parts once every part is in (again: the same answer).
#[utoipa::path(
    post,
    path = "/sessions/{id}/complete",
    tag = "sessions",
    params(("id" = Uuid, Path, description = "The session")),
    responses(
        (status = 200, description = "Complete", body = Session),
        BadRequest, NotFound,
        (status = 409, description = "Parts are missing (`parts_missing`; `details.missing` lists them)", body = crate::http::ErrorBody),
        OperatorErrors,
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<Session>, ApiError> {
    caller.require(Scope::Write)?;
    let s = visible(&state, &caller, id).await?;
    if s.status == SessionStatus::Complete
        || bounded(&state, state.store.complete_session(&s)).await?
    {
        return Ok(ApiJson(visible(&state, &caller, id).await?));
    }
    let have = bounded(&state, state.store.session_part_numbers(&s)).await?;
    let missing: Vec<u32> = (1..=s.parts).filter(|n| !have.contains(n)).collect();
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        "parts_missing",
        format!("{} of {} parts are missing", missing.len(), s.parts),
    );
    e.details = Some(json!({ "missing": missing }));
    Err(e)
}
