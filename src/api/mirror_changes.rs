//! `PATCH` on the mirror's configuration: a mapping's default agents and threads, an
//! alias's members, which agent an identity belongs to. Same functions as the CLI.

use axum::extract::State;
use nexus_proto::{AgentId, TenantId};
use serde::Deserialize;
use uuid::Uuid;

use crate::admin::{self, Actor};
use crate::auth::Operator;
use crate::http::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;
use crate::store::{Alias, ExternalUser, Identity, ProjectMapping, Provider, Scope};

fn allowed(op: &Operator, tenant: TenantId) -> Result<(), ApiError> {
    op.require(Scope::Write)?;
    op.tenant(tenant)
}

#[derive(Debug, Deserialize)]
pub struct MappingPatch {
    default_agents: Option<Vec<AgentId>>,
    open_threads: Option<bool>,
}

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

#[derive(Debug, Deserialize)]
pub struct AliasPatch {
    agents: Vec<AgentId>,
}

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

#[derive(Debug, Deserialize)]
pub struct IdentityPatch {
    agent_id: AgentId,
}

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
