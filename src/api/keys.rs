//! `/api/operator-keys`: list, create and revoke operator keys (`admin` scope). A
//! tenant-bound key sees and manages only its tenant's keys.

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::TenantId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::page::PageQuery;
use crate::admin::{self, Actor, CreatedKey};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, BodyErrors, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::{OperatorKey, Scope, Scopes};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewKey {
    /// 1–100 printable characters.
    name: String,
    /// Comma-separated: read, write, admin.
    #[schema(example = "read,write")]
    scopes: String,
    /// Binds the key to one tenant; a tenant-bound caller's keys are always its tenant's.
    tenant_id: Option<TenantId>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyPage {
    keys: Vec<OperatorKey>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// Live keys (never the key itself), oldest first; a tenant-bound key sees its tenant's only.
#[utoipa::path(
    get,
    path = "/operator-keys",
    tag = "operator-keys",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of live keys", body = KeyPage),
        BadRequest, OperatorErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<KeyPage>, ApiError> {
    op.require(Scope::Admin)?;
    let page = q.page()?;
    let mut keys = state
        .store
        .list_operator_keys_page(op.0.tenant_id, page.after, page.fetch())
        .await?;
    let next_cursor = page.finish(&mut keys, |k| k.id);
    Ok(ApiJson(KeyPage { keys, next_cursor }))
}

/// Creates a key; the answer holds the key itself, shown this once.
#[utoipa::path(
    post,
    path = "/operator-keys",
    tag = "operator-keys",
    request_body = NewKey,
    responses(
        (status = 201, description = "The new key, with the key itself", body = CreatedKey),
        BadRequest, NotFound, BodyErrors, OperatorErrors,
    )
)]
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

/// Revokes a key: refused at once through this node, on other nodes within `--cache-ttl`.
#[utoipa::path(
    delete,
    path = "/operator-keys/{id}",
    tag = "operator-keys",
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        BadRequest, NotFound, OperatorErrors,
    )
)]
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
