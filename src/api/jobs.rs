//! `/api/jobs` and `/api/queue/stats`: the queue and its dead letters, for operators.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::admin::{self, Actor};
use crate::auth::Operator;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::queue::ops::{self, JobDetail, JobPage};
use crate::state::AppState;
use crate::store::{JobFilter, JobStatus, QueueStats, Scope};

#[derive(Debug, Default, Deserialize)]
pub struct FilterQuery {
    status: Option<JobStatus>,
    source: Option<String>,
    kind: Option<String>,
    cursor: Option<Uuid>,
    limit: Option<u32>,
}

impl FilterQuery {
    fn filter(&self, op: &Operator) -> JobFilter {
        JobFilter {
            status: self.status,
            source: self.source.clone(),
            kind: self.kind.clone(),
            tenant: op.0.tenant_id,
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<FilterQuery>,
) -> Result<ApiJson<JobPage>, ApiError> {
    op.require(Scope::Read)?;
    let page = ops::list(
        &state.store,
        &q.filter(&op),
        q.cursor,
        q.limit.unwrap_or(50),
    )
    .await?;
    Ok(ApiJson(page))
}

async fn visible(state: &AppState, op: &Operator, id: Uuid) -> Result<JobDetail, ApiError> {
    let detail = ops::show(&state.store, id).await?;
    if op.0.tenant_id.is_some_and(|t| t != detail.job.tenant_id) {
        return Err(ApiError::not_found("job"));
    }
    Ok(detail)
}

pub async fn show(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<JobDetail>, ApiError> {
    op.require(Scope::Read)?;
    Ok(ApiJson(visible(&state, &op, id).await?))
}

pub async fn replay_one(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<Value>, ApiError> {
    op.require(Scope::Write)?;
    let job = visible(&state, &op, id).await?.job;
    let filter = JobFilter {
        tenant: Some(job.tenant_id),
        ..JobFilter::default()
    };
    let actor = Actor::key(&op.0);
    let n = admin::replay_jobs(&state.store, &actor, Some(&state.queue), &filter, Some(id)).await?;
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_replayable",
            format!(
                "the job is {}; only dead or done jobs can be replayed",
                job.status.as_str()
            ),
        ));
    }
    Ok(ApiJson(json!({ "replayed": n })))
}

#[derive(Debug, Default, Deserialize)]
pub struct ReplayBody {
    status: Option<JobStatus>,
    source: Option<String>,
    kind: Option<String>,
}

/// Replays every finished job matching the filter; dead jobs unless `status` says `done`.
/// An empty body means every dead job (of the key's tenant).
pub async fn replay_many(
    State(state): State<AppState>,
    op: Operator,
    raw: axum::body::Bytes,
) -> Result<ApiJson<Value>, ApiError> {
    op.require(Scope::Write)?;
    let body: ReplayBody = if raw.iter().all(u8::is_ascii_whitespace) {
        ReplayBody::default()
    } else {
        serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request(format!("malformed filter: {e}")))?
    };
    let status = body.status.unwrap_or(JobStatus::Dead);
    if !matches!(status, JobStatus::Dead | JobStatus::Done) {
        return Err(ApiError::bad_request("status must be dead or done"));
    }
    let filter = JobFilter {
        status: Some(status),
        source: body.source,
        kind: body.kind,
        tenant: op.0.tenant_id,
    };
    let actor = Actor::key(&op.0);
    let n = admin::replay_jobs(&state.store, &actor, Some(&state.queue), &filter, None).await?;
    Ok(ApiJson(json!({ "replayed": n })))
}

pub async fn delete(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    op.require(Scope::Write)?;
    let job = visible(&state, &op, id).await?.job;
    admin::delete_job(&state.store, &Actor::key(&op.0), &job).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stats(
    State(state): State<AppState>,
    op: Operator,
) -> Result<ApiJson<QueueStats>, ApiError> {
    op.require(Scope::Read)?;
    let filter = JobFilter {
        tenant: op.0.tenant_id,
        ..JobFilter::default()
    };
    Ok(ApiJson(
        ops::stats(&state.store, &filter, state.queue.clock().now_ms()).await?,
    ))
}
