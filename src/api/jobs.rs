//! `/api/jobs` and `/api/queue/stats`: the queue and its dead letters, for operators.

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::TenantId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::page::PageQuery;
use crate::admin::{self, Actor};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::queue::ops::{self, JobDetail, JobPage};
use crate::state::AppState;
use crate::store::{JobFilter, JobStatus, QueueStats, Scope};

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterQuery {
    status: Option<JobStatus>,
    /// The source kind (`slack`, `clickup`, `ingest`) or an internal producer.
    source: Option<String>,
    /// The job kind (`slack.event`, `tool.call`…).
    kind: Option<String>,
    /// Only this tenant's jobs (a tenant-bound key: its own only).
    tenant: Option<TenantId>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// How many jobs went back to the queue.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Replayed {
    replayed: u64,
}

impl FilterQuery {
    fn filter(&self, op: &Operator) -> Result<JobFilter, ApiError> {
        Ok(JobFilter {
            status: self.status,
            source: self.source.clone(),
            kind: self.kind.clone(),
            tenant: tenant_filter(op, self.tenant)?,
        })
    }
}

/// The tenant whose jobs to count in: the one asked for (which a tenant-bound key may
/// only name if it is its own), else the key's; `None` is every tenant.
fn tenant_filter(op: &Operator, asked: Option<TenantId>) -> Result<Option<TenantId>, ApiError> {
    if let Some(t) = asked {
        op.tenant(t)?;
    }
    Ok(asked.or(op.0.tenant_id))
}

/// Jobs, newest first.
#[utoipa::path(
    get,
    path = "/jobs",
    tag = "jobs",
    params(FilterQuery, PageQuery),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        BadRequest, OperatorErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<FilterQuery>,
) -> Result<ApiJson<JobPage>, ApiError> {
    op.require(Scope::Read)?;
    let page = q.page.page()?;
    let filter = q.filter(&op)?;
    Ok(ApiJson(
        ops::list(&state.store, &filter, page.after, page.limit).await?,
    ))
}

async fn visible(state: &AppState, op: &Operator, id: Uuid) -> Result<JobDetail, ApiError> {
    let detail = ops::show(&state.store, id).await?;
    if op.0.tenant_id.is_some_and(|t| t != detail.job.tenant_id) {
        return Err(ApiError::not_found("job"));
    }
    Ok(detail)
}

/// One job with its payload and every attempt's error.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job")),
    responses(
        (status = 200, description = "The job", body = JobDetail),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<JobDetail>, ApiError> {
    op.require(Scope::Read)?;
    Ok(ApiJson(visible(&state, &op, id).await?))
}

/// Puts a dead (or done) job back in the queue.
#[utoipa::path(
    post,
    path = "/jobs/{id}/replay",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job")),
    responses(
        (status = 200, description = "Queued again", body = Replayed),
        BadRequest, NotFound,
        (status = 409, description = "The job is queued or running (`not_replayable`).", body = ErrorBody),
        OperatorErrors,
    )
)]
pub async fn replay_one(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<Replayed>, ApiError> {
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
    Ok(ApiJson(Replayed { replayed: n }))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ReplayBody {
    /// `dead` (the default) or `done`.
    status: Option<JobStatus>,
    source: Option<String>,
    kind: Option<String>,
}

/// Replays every finished job matching the filter; dead jobs unless `status` says `done`.
/// An empty body means every dead job (of the key's tenant).
#[utoipa::path(
    post,
    path = "/jobs/replay",
    tag = "jobs",
    request_body = Option<ReplayBody>,
    responses(
        (status = 200, description = "Queued again", body = Replayed),
        BadRequest, OperatorErrors,
    )
)]
pub async fn replay_many(
    State(state): State<AppState>,
    op: Operator,
    raw: axum::body::Bytes,
) -> Result<ApiJson<Replayed>, ApiError> {
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
    Ok(ApiJson(Replayed { replayed: n }))
}

/// Deletes a job that is not running.
#[utoipa::path(
    delete,
    path = "/jobs/{id}",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job")),
    responses(
        (status = 204, description = "Deleted"),
        BadRequest,
        (status = 404, description = "No such job, or it is running (`not_found`).", body = ErrorBody),
        OperatorErrors,
    )
)]
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

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Only this tenant's jobs (a tenant-bound key: its own only).
    tenant: Option<TenantId>,
}

/// Counts per status, the age of the oldest queued job, finished jobs by reason.
#[utoipa::path(
    get,
    path = "/queue/stats",
    tag = "jobs",
    params(StatsQuery),
    responses(
        (status = 200, description = "Queue statistics", body = QueueStats),
        BadRequest, OperatorErrors,
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<ApiJson<QueueStats>, ApiError> {
    op.require(Scope::Read)?;
    let filter = JobFilter {
        tenant: tenant_filter(&op, q.tenant)?,
        ..JobFilter::default()
    };
    Ok(ApiJson(
        ops::stats(&state.store, &filter, state.queue.clock().now_ms()).await?,
    ))
}
