//! `GET /api/tenants`: the tenants this key sees, a page at a time. A stand-in for the
//! full tenants API (same shape), so the dashboard's tenant picker has something to read.

use axum::extract::State;
use nexus_proto::TenantId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Operator;
use crate::http::{ApiError, ApiJson, ApiQuery};
use crate::state::AppState;
use crate::store::Scope;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// The last id of the previous page.
    cursor: Option<TenantId>,
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<Value>, ApiError> {
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
    Ok(ApiJson(json!({ "tenants": page, "next_cursor": next })))
}
