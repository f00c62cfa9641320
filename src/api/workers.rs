//! `/api/workers`: agent-host workers (`nexus worker`) report their health with the
//! agent's access token (`POST /api/workers/heartbeat`); operators list them, with
//! those not heard from for 3 × their interval marked stale. A heartbeat whose failure
//! streak reaches the worker's `alert_after` tells the tenant's alerts, once per streak.

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::{AgentId, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::page::{PageQuery, text_cursor};
use super::pull::AgentToken;
use super::sessions::bounded;
use crate::auth::Operator;
use crate::bus::EmitError;
use crate::http::responses::{BadRequest, BodyErrors, NotFound, OperatorErrors, Unavailable};
use crate::http::{ApiError, ApiJson, ApiQuery, ErrorBody};
use crate::state::AppState;
use crate::store::{Scope, Worker, WorkerFilter, WorkerReport};
use crate::time::now_ms;

const MAX_HOST: usize = 255;
const MAX_VERSION: usize = 255;
const MAX_ERROR: usize = 1000;
const MAX_INTERVAL_S: u64 = 3600;

/// A worker's report, as `nexus worker` sends it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the body; it is read field by field (see `parse`), naming each bad one.
pub struct Heartbeat {
    /// The worker's host name (1–255 characters); one worker per agent and host.
    host: String,
    version: String,
    /// Seconds between heartbeats (1–3600): stale after 3 × this.
    interval_s: u32,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    last_scan_at: Option<String>,
    #[schema(format = DateTime)]
    last_upload_at: Option<String>,
    sessions_seen: u64,
    uploaded: u64,
    queued: u64,
    failing: u64,
    parked: u64,
    consecutive_failures: u64,
    /// Failures in a row that alert (0: never).
    alert_after: u32,
    /// At most 1000 characters.
    last_error: Option<String>,
}

/// Stores the worker's report (replacing its previous one).
#[utoipa::path(
    post,
    path = "/workers/heartbeat",
    tag = "agents",
    security(("agent_token" = [])),
    request_body = Heartbeat,
    responses(
        (status = 204, description = "Stored"),
        BadRequest,
        (status = 401, description = "No access token, or an invalid, expired or revoked one, an operator key, or a disabled agent (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "The agent's tenant is suspended (`tenant_suspended`)", body = ErrorBody),
        BodyErrors, Unavailable,
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    AgentToken { agent, tenant }: AgentToken,
    ApiJson(body): ApiJson<Value>,
) -> Result<StatusCode, ApiError> {
    let report = parse(agent, tenant, &body, now_ms())?;
    let before = bounded(&state, state.store.worker_streak(agent, &report.host)).await?;
    // The alert first: its dedupe key names `before`, so when storing fails and the
    // worker sends again, nothing is queued twice, and nothing is lost.
    let queued = crate::alerts::worker_failing(&state.store, &state.queue, &report, before);
    let bound = state.config.serve.db.request_timeout;
    match tokio::time::timeout(bound, queued).await {
        Ok(r) => r.map_err(|e| ApiError::from(EmitError::Append(e)))?,
        Err(_) => {
            return Err(ApiError::unavailable(
                "storage did not answer in time; retry later",
            ));
        }
    };
    bounded(&state, state.store.save_worker(&report)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every bad field of a heartbeat, collected before answering.
#[derive(Default)]
struct Fields(Vec<(&'static str, String)>);

impl Fields {
    fn text(&mut self, o: &Map<String, Value>, k: &'static str, max: usize) -> Option<String> {
        match o.get(k) {
            Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
            _ => self.bad(k, format!("must be a string of at most {max} characters")),
        }
    }

    fn opt_text(&mut self, o: &Map<String, Value>, k: &'static str, max: usize) -> Option<String> {
        match o.get(k) {
            None | Some(Value::Null) => None,
            _ => self.text(o, k, max),
        }
    }

    fn count(&mut self, o: &Map<String, Value>, k: &'static str, max: u64) -> u64 {
        match o.get(k).and_then(Value::as_u64) {
            Some(n) if n <= max => n,
            _ => self
                .bad(k, format!("must be a whole number from 0 to {max}"))
                .unwrap_or(0),
        }
    }

    fn time(&mut self, o: &Map<String, Value>, k: &'static str) -> Option<i64> {
        let parsed = o
            .get(k)
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_millis());
        parsed.or_else(|| self.bad(k, "must be an RFC 3339 time, like 2026-12-01T09:30:00Z"))
    }

    fn opt_time(&mut self, o: &Map<String, Value>, k: &'static str) -> Option<i64> {
        match o.get(k) {
            None | Some(Value::Null) => None,
            _ => self.time(o, k),
        }
    }

    fn bad<T>(&mut self, field: &'static str, why: impl Into<String>) -> Option<T> {
        self.0.push((field, why.into()));
        None
    }
}

/// Checks a heartbeat received at `now`.
fn parse(
    agent: AgentId,
    tenant: TenantId,
    body: &Value,
    now: i64,
) -> Result<WorkerReport, ApiError> {
    let Value::Object(o) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let mut f = Fields::default();
    let host = f.text(o, "host", MAX_HOST);
    if host.as_deref().is_some_and(str::is_empty) {
        f.bad::<()>("host", format!("must be 1–{MAX_HOST} characters"));
    }
    let version = f.text(o, "version", MAX_VERSION);
    let interval_s = f.count(o, "interval_s", MAX_INTERVAL_S);
    if o.get("interval_s").and_then(Value::as_u64) == Some(0) {
        f.bad::<()>("interval_s", format!("must be from 1 to {MAX_INTERVAL_S}"));
    }
    let u32_max = u64::from(u32::MAX);
    let report = WorkerReport {
        agent_id: agent,
        tenant_id: tenant,
        host: host.unwrap_or_default(),
        version: version.unwrap_or_default(),
        interval_s: u32::try_from(interval_s).unwrap_or(1),
        started_at: f.time(o, "started_at").unwrap_or_default(),
        last_scan_at: f.opt_time(o, "last_scan_at"),
        last_upload_at: f.opt_time(o, "last_upload_at"),
        sessions_seen: f.count(o, "sessions_seen", u64::MAX),
        uploaded: f.count(o, "uploaded", u64::MAX),
        queued: f.count(o, "queued", u64::MAX),
        failing: f.count(o, "failing", u64::MAX),
        parked: f.count(o, "parked", u64::MAX),
        consecutive_failures: f.count(o, "consecutive_failures", u64::MAX),
        alert_after: u32::try_from(f.count(o, "alert_after", u32_max)).unwrap_or(0),
        last_error: f.opt_text(o, "last_error", MAX_ERROR),
        seen_at: now,
    };
    if !f.0.is_empty() {
        return Err(ApiError::invalid_fields(f.0));
    }
    Ok(report)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkersQuery {
    /// Only this tenant's (a tenant-bound key: its own, always).
    tenant: Option<TenantId>,
    /// Only this agent's.
    agent: Option<AgentId>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkerList {
    workers: Vec<Worker>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// The workers this key sees, by agent, then host.
#[utoipa::path(
    get,
    path = "/workers",
    tag = "agents",
    params(WorkersQuery, PageQuery),
    responses((status = 200, description = "The workers", body = WorkerList), BadRequest, NotFound, OperatorErrors)
)]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<WorkersQuery>,
) -> Result<ApiJson<WorkerList>, ApiError> {
    op.require(Scope::Read)?;
    let page = q.page.page_by_text(|key| {
        let (agent, host) = key.split_once('.')?;
        Some((agent.parse::<AgentId>().ok()?, host.to_owned()))
    })?;
    if let Some(t) = q.tenant {
        op.tenant(t)?;
    }
    let filter = WorkerFilter {
        tenant: q.tenant.or(op.0.tenant_id),
        agent: q.agent,
        after: page.after.clone(),
        limit: page.fetch(),
    };
    let mut workers = state.store.list_workers(&filter, now_ms()).await?;
    let next_cursor = page.finish(&mut workers, |w| {
        text_cursor(&format!("{}.{}", w.agent_id, w.host))
    });
    Ok(ApiJson(WorkerList {
        workers,
        next_cursor,
    }))
}
