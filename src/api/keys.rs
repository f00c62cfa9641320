//! `/api/operator-keys`: list, create and revoke operator keys (`admin` scope). A
//! tenant-bound key sees and manages only its tenant's keys.

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::TenantId;
use serde::Deserialize;
use uuid::Uuid;

use crate::admin::{self, Actor, CreatedKey};
use crate::auth::Operator;
use crate::http::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;
use crate::store::{OperatorKey, Scope, Scopes};

#[derive(Debug, Deserialize)]
pub struct NewKey {
    name: String,
    /// Comma-separated: read, write, admin.
    scopes: String,
    tenant_id: Option<TenantId>,
}

pub async fn list(
    State(state): State<AppState>,
    op: Operator,
) -> Result<ApiJson<Vec<OperatorKey>>, ApiError> {
    op.require(Scope::Admin)?;
    Ok(ApiJson(
        state.store.list_operator_keys(op.0.tenant_id).await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, ApiJson<CreatedKey>), ApiError> {
    op.require(Scope::Admin)?;
    let scopes: Scopes = body
        .scopes
        .parse()
        .map_err(|e| ApiError::bad_request(format!("scopes: {e}")))?;
    // A tenant-bound key makes keys of its own tenant only.
    let tenant = match (op.0.tenant_id, body.tenant_id) {
        (Some(own), Some(asked)) if own != asked => return Err(ApiError::not_found("tenant")),
        (Some(own), _) => Some(own),
        (None, asked) => asked,
    };
    let created =
        admin::create_operator_key(&state.store, &Actor::key(&op.0), &body.name, scopes, tenant)
            .await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// Revoked through this node: refused here at once, on other nodes within `--cache-ttl`.
pub async fn revoke(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    op.require(Scope::Admin)?;
    admin::revoke_operator_key(&state.store, &Actor::key(&op.0), id, op.0.tenant_id).await?;
    state.operator_keys.forget_all();
    Ok(StatusCode::NO_CONTENT)
}
