//! `GET /api/tenants/{id}/activity`: a tenant's events and webhooks per UTC day, for
//! the dashboard's usage charts.

use axum::extract::State;
use nexus_proto::TenantId;
use serde::{Deserialize, Serialize};

use crate::admin::overview::{self, ActivityDay};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::Scope;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Days up to today, UTC (1–90, default 14).
    days: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Activity {
    /// Oldest first, every day present.
    days: Vec<ActivityDay>,
}

/// Events (counted once however many agents got each) and webhooks per UTC day.
#[utoipa::path(
    get,
    path = "/tenants/{id}/activity",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant"), ActivityQuery),
    responses(
        (status = 200, description = "Activity per day", body = Activity),
        BadRequest, NotFound, OperatorErrors,
    )
)]

pub async fn activity(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<TenantId>,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<ApiJson<Activity>, ApiError> {
    op.require(Scope::Read)?;
    op.tenant(id)?;
    let now = state.clock.now_ms();
    let days = overview::activity(&state.store, id, q.days.unwrap_or(14), now).await?;
    Ok(ApiJson(Activity { days }))
}
