//! `/api/tenants`: list, create, show, update (name, tier), suspend, resume, delete.
//! A tenant-bound key sees only its own tenant and may neither create nor delete one.

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::{TenantId, close};
use serde::{Deserialize, Serialize};

use super::page::PageQuery;
use crate::admin::{self, Actor};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, BodyErrors, Conflict, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::{Scope, Tenant, TenantChange, TenantStatus};

#[derive(Serialize, utoipa::ToSchema)]
pub struct TenantPage {
    tenants: Vec<Tenant>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// The tenants this key sees (a tenant-bound key: its own), oldest first.
#[utoipa::path(
    get,
    path = "/tenants",
    tag = "tenants",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of tenants", body = TenantPage),
        BadRequest, OperatorErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<TenantPage>, ApiError> {
    op.require(Scope::Read)?;
    let page = q.page()?;
    let mut tenants = state
        .store
        .list_tenants_page(op.0.tenant_id, page.after, page.fetch())
        .await?;
    let next = page.finish(&mut tenants, |t| *t.id.as_uuid());
    Ok(ApiJson(TenantPage {
        tenants,
        next_cursor: next,
    }))
}

/// Only a global key manages the set of tenants.
fn global(op: &Operator) -> Result<(), ApiError> {
    op.require(Scope::Admin)?;
    match op.0.tenant_id {
        Some(_) => Err(ApiError::forbidden(
            "a tenant-bound key cannot create or delete tenants",
        )),
        None => Ok(()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewTenant {
    /// Printable, 1–100 characters.
    name: String,
    /// 1–32 characters of a–z, 0–9, `_` and `-`; its limits come from configuration.
    tier: Option<String>,
}

/// Creates a tenant (`admin`, a key bound to no tenant).
#[utoipa::path(
    post,
    path = "/tenants",
    tag = "tenants",
    request_body = NewTenant,
    responses(
        (status = 201, description = "The new tenant", body = Tenant),
        BadRequest, Conflict, BodyErrors, OperatorErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, ApiJson<Tenant>), ApiError> {
    global(&op)?;
    let actor = Actor::key(&op.0);
    let mut tenant =
        admin::create_tenant(&state.store, &state.config.tiers, &actor, &body.name).await?;
    if let Some(tier) = body.tier {
        let change = TenantChange {
            name: None,
            tier: Some(tier),
        };
        tenant = admin::update_tenant(&state.store, &state.config.tiers, &actor, tenant.id, change)
            .await?;
    }
    Ok((StatusCode::CREATED, ApiJson(tenant)))
}

#[utoipa::path(
    get,
    path = "/tenants/{id}",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant")),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<TenantId>,
) -> Result<ApiJson<Tenant>, ApiError> {
    op.require(Scope::Read)?;
    op.tenant(id)?;
    Ok(ApiJson(state.store.get_tenant(id).await?))
}

/// What to change; absent fields stay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TenantPatch {
    name: Option<String>,
    tier: Option<String>,
}

/// Renames the tenant or changes its tier (`admin`).
#[utoipa::path(
    patch,
    path = "/tenants/{id}",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body = TenantPatch,
    responses(
        (status = 200, description = "The tenant as changed", body = Tenant),
        BadRequest, NotFound, Conflict, BodyErrors, OperatorErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<TenantId>,
    ApiJson(body): ApiJson<TenantPatch>,
) -> Result<ApiJson<Tenant>, ApiError> {
    op.require(Scope::Admin)?;
    op.tenant(id)?;
    let change = TenantChange {
        name: body.name,
        tier: body.tier,
    };
    let actor = Actor::key(&op.0);
    let tenant =
        admin::update_tenant(&state.store, &state.config.tiers, &actor, id, change).await?;
    state.ctx.forget_operator_changes();
    state.quotas.forget(id);
    Ok(ApiJson(tenant))
}

/// Refuses the tenant's tokens and webhooks; its sessions on this node close with 4011
/// at once, on other nodes within `--reconcile-interval`.
#[utoipa::path(
    post,
    path = "/tenants/{id}/suspend",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant")),
    responses(
        (status = 200, description = "The tenant, suspended", body = Tenant),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn suspend(
    state: State<AppState>,
    op: Operator,
    id: ApiPath<TenantId>,
) -> Result<ApiJson<Tenant>, ApiError> {
    set_status(state, op, id, TenantStatus::Suspended).await
}

/// Undoes a suspension.
#[utoipa::path(
    post,
    path = "/tenants/{id}/resume",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant")),
    responses(
        (status = 200, description = "The tenant, active", body = Tenant),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn resume(
    state: State<AppState>,
    op: Operator,
    id: ApiPath<TenantId>,
) -> Result<ApiJson<Tenant>, ApiError> {
    set_status(state, op, id, TenantStatus::Active).await
}

async fn set_status(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<TenantId>,
    status: TenantStatus,
) -> Result<ApiJson<Tenant>, ApiError> {
    op.require(Scope::Admin)?;
    op.tenant(id)?;
    let actor = Actor::key(&op.0);
    let tenant = admin::set_tenant_status(&state.store, &actor, id, status).await?;
    state.ctx.forget_operator_changes();
    if status == TenantStatus::Suspended {
        close_sessions(&state, id, close::TENANT_SUSPENDED).await?;
    }
    Ok(ApiJson(tenant))
}

/// Closes the tenant's sessions on this node with `code`.
async fn close_sessions(state: &AppState, tenant: TenantId, code: u16) -> Result<(), ApiError> {
    let sessions = state.hub.sessions();
    for agent in state.store.list_agents(tenant).await? {
        sessions.close_agent(agent.id, code);
    }
    Ok(())
}

/// Deletes the tenant with all its data; its sessions here close with 4003 (its
/// agents are gone), elsewhere within `--reconcile-interval`.
#[utoipa::path(
    delete,
    path = "/tenants/{id}",
    tag = "tenants",
    params(("id" = TenantId, Path, description = "The tenant")),
    responses(
        (status = 204, description = "Deleted, with all its data"),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<TenantId>,
) -> Result<StatusCode, ApiError> {
    global(&op)?;
    let agents = state.store.list_agents(id).await?;
    admin::delete_tenant(&state.store, &Actor::key(&op.0), id).await?;
    state.quotas.forget(id);
    let sessions = state.hub.sessions();
    for agent in agents {
        sessions.close_agent(agent.id, close::AGENT_DISABLED);
    }
    state.ctx.forget_operator_changes();
    // Keys bound to the tenant went with it.
    state.operator_keys.forget_all();
    Ok(StatusCode::NO_CONTENT)
}
