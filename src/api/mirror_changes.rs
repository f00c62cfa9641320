//! `PATCH` on the mirror's configuration: a mapping's default agents and threads, an
//! alias's members, which agent an identity belongs to. Same functions as the CLI.

use axum::extract::State;
use nexus_proto::{AgentId, TenantId};
use serde::Deserialize;
use uuid::Uuid;

use crate::admin::{self, Actor};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, BodyErrors, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;
use crate::store::{Alias, ExternalUser, Identity, ProjectMapping, Provider, Scope};

fn allowed(op: &Operator, tenant: TenantId) -> Result<(), ApiError> {
    op.require(Scope::Write)?;
    op.tenant(tenant)
}

/// What to change; absent fields stay.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MappingPatch {
    /// Who gets a task nobody is assigned to (replaces the list).
    default_agents: Option<Vec<AgentId>>,
    /// Post each new task in the channel and use that message as its thread.
    open_threads: Option<bool>,
}

/// Changes a mapping's default agents or threads.
#[utoipa::path(
    patch,
    path = "/tenants/{id}/mappings/{mapping}",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant"), ("mapping" = Uuid, Path, description = "The mapping")),
    request_body = MappingPatch,
    responses(
        (status = 200, description = "The mapping as changed", body = ProjectMapping),
        BadRequest, NotFound, BodyErrors, OperatorErrors,
    )
)]
pub async fn update_mapping(
    State(state): State<AppState>,
    op: Operator,
    ApiPath((tenant, id)): ApiPath<(TenantId, Uuid)>,
    ApiJson(body): ApiJson<MappingPatch>,
) -> Result<ApiJson<ProjectMapping>, ApiError> {
    allowed(&op, tenant)?;
    let actor = Actor::key(&op.0);
    let mapping = admin::update_mapping(
        &state.store,
        &actor,
        tenant,
        id,
        body.default_agents,
        body.open_threads,
    )
    .await?;
    state.ctx.forget_mappings();
    Ok(ApiJson(mapping))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AliasPatch {
    /// The alias's members from now on.
    #[schema(min_items = 1)]
    agents: Vec<AgentId>,
}

/// Replaces an alias's members.
#[utoipa::path(
    patch,
    path = "/tenants/{id}/aliases/{alias}",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant"), ("alias" = Uuid, Path, description = "The alias's id")),
    request_body = AliasPatch,
    responses(
        (status = 200, description = "The alias as changed", body = Alias),
        BadRequest, NotFound, BodyErrors, OperatorErrors,
    )
)]
pub async fn update_alias(
    State(state): State<AppState>,
    op: Operator,
    ApiPath((tenant, id)): ApiPath<(TenantId, Uuid)>,
    ApiJson(body): ApiJson<AliasPatch>,
) -> Result<ApiJson<Alias>, ApiError> {
    allowed(&op, tenant)?;
    let actor = Actor::key(&op.0);
    Ok(ApiJson(
        admin::set_alias_agents(&state.store, &actor, tenant, id, &body.agents).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct IdentityPatch {
    /// The tenant's agent the user belongs to from now on.
    agent_id: AgentId,
}

/// Gives the provider user to another agent of the tenant.
#[utoipa::path(
    patch,
    path = "/tenants/{id}/identities/{provider}/{user}",
    tag = "mirror",
    params(
        ("id" = TenantId, Path, description = "The tenant"),
        ("provider" = inline(Provider), Path, description = "Whose user"),
        ("user" = String, Path, description = "The user's id at the provider"),
    ),
    request_body = IdentityPatch,
    responses(
        (status = 200, description = "The identity as changed", body = Identity),
        BadRequest, NotFound, BodyErrors, OperatorErrors,
    )
)]
pub async fn update_identity(
    State(state): State<AppState>,
    op: Operator,
    ApiPath((tenant, provider, user)): ApiPath<(TenantId, Provider, String)>,
    ApiJson(body): ApiJson<IdentityPatch>,
) -> Result<ApiJson<Identity>, ApiError> {
    allowed(&op, tenant)?;
    let user = ExternalUser::parse(provider, &user)
        .map_err(|e| ApiError::invalid_fields([("user", e.to_string())]))?;
    let actor = Actor::key(&op.0);
    Ok(ApiJson(
        admin::move_identity(&state.store, &actor, tenant, user, body.agent_id).await?,
    ))
}
