//! The mirror's configuration under `/api/tenants/{id}/…`: mappings, aliases,
//! identities, and the Slack channels seen created. Same functions as the CLI.

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::{AgentId, ClickUpListId, SlackChannelId, TenantId};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::admin::{self, Actor, MappingSpec};
use crate::auth::Operator;
use crate::http::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;
use crate::store::{Alias, ExternalUser, Identity, ProjectMapping, Provider, Scope, SlackChannel};

/// The operator may `scope` in this tenant, and the tenant exists.
async fn allowed(
    state: &AppState,
    op: &Operator,
    tenant: TenantId,
    scope: Scope,
) -> Result<(), ApiError> {
    op.require(scope)?;
    op.tenant(tenant)?;
    state.store.get_tenant(tenant).await?;
    Ok(())
}

#[derive(Deserialize)]
pub struct MappingBody {
    clickup_list_id: ClickUpListId,
    slack_channel_id: SlackChannelId,
    #[serde(default)]
    default_agents: Vec<AgentId>,
    #[serde(default = "yes")]
    open_threads: bool,
}

fn yes() -> bool {
    true
}

pub async fn add_mapping(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiJson(body): ApiJson<MappingBody>,
) -> Result<(StatusCode, ApiJson<ProjectMapping>), ApiError> {
    allowed(&state, &op, tenant, Scope::Write).await?;
    let spec = MappingSpec {
        tenant,
        clickup_list: body.clickup_list_id,
        slack_channel: body.slack_channel_id,
        default_agents: body.default_agents,
        open_threads: body.open_threads,
    };
    let mapping = admin::add_mapping(&state.store, &Actor::key(&op.0), spec).await?;
    // Tools may reach the new channel and list at once.
    state.ctx.forget_mappings();
    Ok((StatusCode::CREATED, ApiJson(mapping)))
}

pub async fn list_mappings(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
) -> Result<ApiJson<Value>, ApiError> {
    allowed(&state, &op, tenant, Scope::Read).await?;
    Ok(ApiJson(
        json!({ "mappings": state.store.list_mappings(tenant).await? }),
    ))
}

pub async fn remove_mapping(
    State(state): State<AppState>,
    op: Operator,
    ApiPath((tenant, id)): ApiPath<(TenantId, Uuid)>,
) -> Result<StatusCode, ApiError> {
    allowed(&state, &op, tenant, Scope::Write).await?;
    admin::remove_mapping(&state.store, &Actor::key(&op.0), tenant, id).await?;
    state.ctx.forget_mappings();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct AliasBody {
    alias: String,
    agents: Vec<AgentId>,
}

pub async fn add_alias(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiJson(body): ApiJson<AliasBody>,
) -> Result<ApiJson<Alias>, ApiError> {
    allowed(&state, &op, tenant, Scope::Write).await?;
    Ok(ApiJson(
        admin::add_alias(
            &state.store,
            &Actor::key(&op.0),
            tenant,
            &body.alias,
            &body.agents,
        )
        .await?,
    ))
}

pub async fn list_aliases(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
) -> Result<ApiJson<Value>, ApiError> {
    allowed(&state, &op, tenant, Scope::Read).await?;
    Ok(ApiJson(
        json!({ "aliases": state.store.list_aliases(tenant).await? }),
    ))
}

pub async fn remove_alias(
    State(state): State<AppState>,
    op: Operator,
    ApiPath((tenant, id)): ApiPath<(TenantId, Uuid)>,
) -> Result<StatusCode, ApiError> {
    allowed(&state, &op, tenant, Scope::Write).await?;
    admin::remove_alias(&state.store, &Actor::key(&op.0), tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct IdentityBody {
    agent_id: AgentId,
    /// `provider` and `external_user_id`.
    #[serde(flatten)]
    user: ExternalUser,
}

pub async fn add_identity(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiJson(body): ApiJson<IdentityBody>,
) -> Result<(StatusCode, ApiJson<Identity>), ApiError> {
    allowed(&state, &op, tenant, Scope::Write).await?;
    admin::agent_of(&state.store, tenant, body.agent_id).await?;
    let identity =
        admin::add_identity(&state.store, &Actor::key(&op.0), body.agent_id, body.user).await?;
    Ok((StatusCode::CREATED, ApiJson(identity)))
}

pub async fn list_identities(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
) -> Result<ApiJson<Value>, ApiError> {
    allowed(&state, &op, tenant, Scope::Read).await?;
    Ok(ApiJson(
        json!({ "identities": state.store.list_identities(tenant).await? }),
    ))
}

pub async fn remove_identity(
    State(state): State<AppState>,
    op: Operator,
    ApiPath((tenant, provider, user)): ApiPath<(TenantId, Provider, String)>,
) -> Result<StatusCode, ApiError> {
    allowed(&state, &op, tenant, Scope::Write).await?;
    let user =
        ExternalUser::parse(provider, &user).map_err(|e| ApiError::bad_request(e.to_string()))?;
    admin::remove_identity(&state.store, &Actor::key(&op.0), tenant, user, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_channels(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
) -> Result<ApiJson<Value>, ApiError> {
    allowed(&state, &op, tenant, Scope::Read).await?;
    let channels: Vec<SlackChannel> = state.store.list_channels(tenant).await?;
    Ok(ApiJson(json!({ "channels": channels })))
}
