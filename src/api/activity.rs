//! `GET /api/tenants/{id}/activity`: a tenant's events and webhooks per UTC day, for
//! the dashboard's usage charts.

use axum::extract::State;
use nexus_proto::TenantId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin::overview;
use crate::auth::Operator;
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::Scope;

#[derive(Debug, Deserialize)]
pub struct ActivityQuery {
    days: Option<u32>,
}

pub async fn activity(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<TenantId>,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<ApiJson<Value>, ApiError> {
    op.require(Scope::Read)?;
    op.tenant(id)?;
    let now = state.clock.now_ms();
    let days = overview::activity(&state.store, id, q.days.unwrap_or(14), now).await?;
    Ok(ApiJson(json!({ "days": days })))
}
