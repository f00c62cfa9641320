//! `PATCH /api/jobs/{id}`: cancel a queued job (`{"status":"cancelled"}`) or move its
//! next run (`{"run_at":"<RFC 3339>"}`). Anything but a queued job is 409.

use axum::extract::State;
use chrono::DateTime;
use serde::Deserialize;
use uuid::Uuid;

use crate::admin::{self, Actor};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, BodyErrors, Conflict, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath};
use crate::queue::ops;
use crate::state::AppState;
use crate::store::{Job, Scope};

/// One change: `status` or `run_at`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    /// Only `cancelled`.
    #[schema(value_type = Option<String>, pattern = "^cancelled$")]
    status: Option<String>,
    /// When to run it next (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    run_at: Option<String>,
}

/// Cancels a queued job or moves its next run.
#[utoipa::path(
    patch,
    path = "/jobs/{id}",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job")),
    request_body = JobPatch,
    responses(
        (status = 200, description = "The job as changed", body = Job),
        BadRequest, NotFound, Conflict, BodyErrors, OperatorErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<JobPatch>,
) -> Result<ApiJson<Job>, ApiError> {
    op.require(Scope::Write)?;
    let job = ops::show(&state.store, id).await?.job;
    if op.0.tenant_id.is_some_and(|t| t != job.tenant_id) {
        return Err(ApiError::not_found("job"));
    }
    let actor = Actor::key(&op.0);
    let changed = match (body.status.as_deref(), body.run_at.as_deref()) {
        (Some("cancelled"), None) => admin::cancel_job(&state.store, &actor, &job).await?,
        (Some(_), _) => {
            return Err(ApiError::invalid_fields([(
                "status",
                "can only be set to cancelled (alone)".to_owned(),
            )]));
        }
        (None, Some(at)) => {
            let run_at = DateTime::parse_from_rfc3339(at)
                .map_err(|e| {
                    ApiError::invalid_fields([("run_at", format!("is not RFC 3339: {e}"))])
                })?
                .timestamp_millis();
            let changed = admin::reschedule_job(&state.store, &actor, &job, run_at).await?;
            state.queue.wake_claimer();
            changed
        }
        (None, None) => {
            return Err(ApiError::invalid_fields([(
                "status",
                "give status (cancelled) or run_at".to_owned(),
            )]));
        }
    };
    Ok(ApiJson(changed))
}
