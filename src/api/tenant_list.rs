//! `GET /api/tenants`: the tenants this key sees, a page at a time. A stand-in for the
//! full tenants API (same shape), so the dashboard's tenant picker has something to read.

use axum::extract::State;
use nexus_proto::TenantId;
use serde::{Deserialize, Serialize};

use crate::auth::Operator;
use crate::http::responses::{BadRequest, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiQuery};
use crate::state::AppState;
use crate::store::{Scope, Tenant};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<TenantId>,
    /// At most this many (1–500, default 50; out of range is clamped).
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantPage {
    tenants: Vec<Tenant>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<TenantId>,
}

/// The tenants this key sees, oldest id first.
#[utoipa::path(
    get,
    path = "/tenants",
    tag = "tenants",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of tenants", body = TenantPage),
        BadRequest, OperatorErrors,
    )
)]

pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<TenantPage>, ApiError> {
    op.require(Scope::Read)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500) as usize;
    let page: Vec<_> = state
        .store
        .list_tenants()
        .await?
        .into_iter()
        .filter(|t| op.0.tenant_id.is_none_or(|own| own == t.id))
        .filter(|t| q.cursor.is_none_or(|c| t.id.as_uuid() > c.as_uuid()))
        .take(limit)
        .collect();
    let next = (page.len() == limit)
        .then(|| page.last().map(|t| t.id))
        .flatten();
    Ok(ApiJson(TenantPage {
        tenants: page,
        next_cursor: next,
    }))
}
