//! The mirror's configuration under `/api/tenants/{id}/…`: mappings, aliases,
//! identities, and the Slack channels seen created. Same functions as the CLI.

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::{AgentId, ClickUpListId, SlackChannelId, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::page::{PageQuery, text_cursor};
use crate::admin::{self, Actor, MappingSpec};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, BodyErrors, Conflict, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
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

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MappingBody {
    clickup_list_id: ClickUpListId,
    slack_channel_id: SlackChannelId,
    /// Who gets a task nobody is assigned to.
    #[serde(default)]
    default_agents: Vec<AgentId>,
    /// Post each new task in the channel and use that message as its thread.
    #[serde(default = "yes")]
    #[schema(default = true)]
    open_threads: bool,
}

fn yes() -> bool {
    true
}

/// Maps a ClickUp list to a Slack channel.
#[utoipa::path(
    post,
    path = "/tenants/{id}/mappings",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body = MappingBody,
    responses(
        (status = 201, description = "The new mapping", body = ProjectMapping),
        BadRequest, NotFound, Conflict, BodyErrors, OperatorErrors,
    )
)]
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct Mappings {
    mappings: Vec<ProjectMapping>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/tenants/{id}/mappings",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant"), PageQuery),
    responses(
        (status = 200, description = "The tenant's mappings", body = Mappings),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn list_mappings(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<Mappings>, ApiError> {
    allowed(&state, &op, tenant, Scope::Read).await?;
    let page = q.page()?;
    let mut mappings = state
        .store
        .list_mappings_page(tenant, page.after, page.fetch())
        .await?;
    let next_cursor = page.finish(&mut mappings, |m| m.id);
    Ok(ApiJson(Mappings {
        mappings,
        next_cursor,
    }))
}

#[utoipa::path(
    delete,
    path = "/tenants/{id}/mappings/{mapping}",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant"), ("mapping" = Uuid, Path, description = "The mapping")),
    responses(
        (status = 204, description = "Removed"),
        BadRequest, NotFound, OperatorErrors,
    )
)]
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

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AliasBody {
    /// The name after `@` (`AI_Squad`).
    #[schema(pattern = "^@?[A-Za-z0-9_.-]{1,64}$")]
    alias: String,
    #[schema(min_items = 1)]
    agents: Vec<AgentId>,
}

/// Makes `@alias` name these agents; on an existing alias, adds them to it.
#[utoipa::path(
    post,
    path = "/tenants/{id}/aliases",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body = AliasBody,
    responses(
        (status = 200, description = "The alias with all its agents", body = Alias),
        BadRequest, NotFound, Conflict, BodyErrors, OperatorErrors,
    )
)]
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct Aliases {
    aliases: Vec<Alias>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/tenants/{id}/aliases",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant"), PageQuery),
    responses(
        (status = 200, description = "The tenant's aliases", body = Aliases),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn list_aliases(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<Aliases>, ApiError> {
    allowed(&state, &op, tenant, Scope::Read).await?;
    let page = q.page()?;
    let mut aliases = state
        .store
        .list_aliases_page(tenant, page.after, page.fetch())
        .await?;
    let next_cursor = page.finish(&mut aliases, |a| a.id);
    Ok(ApiJson(Aliases {
        aliases,
        next_cursor,
    }))
}

#[utoipa::path(
    delete,
    path = "/tenants/{id}/aliases/{alias}",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant"), ("alias" = Uuid, Path, description = "The alias's id")),
    responses(
        (status = 204, description = "Removed"),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn remove_alias(
    State(state): State<AppState>,
    op: Operator,
    ApiPath((tenant, id)): ApiPath<(TenantId, Uuid)>,
) -> Result<StatusCode, ApiError> {
    allowed(&state, &op, tenant, Scope::Write).await?;
    admin::remove_alias(&state.store, &Actor::key(&op.0), tenant, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct IdentityBody {
    agent_id: AgentId,
    /// `provider` and `external_user_id`.
    #[serde(flatten)]
    user: ExternalUser,
}

/// Says which ClickUp or Slack user is this agent.
#[utoipa::path(
    post,
    path = "/tenants/{id}/identities",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body = IdentityBody,
    responses(
        (status = 201, description = "The new identity", body = Identity),
        BadRequest, NotFound, Conflict, BodyErrors, OperatorErrors,
    )
)]
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

/// An identity's cursor: `provider:user`, the pair that is unique in a tenant.
fn identity_cursor(user: &ExternalUser) -> String {
    text_cursor(&format!("{}:{}", user.provider().as_str(), user.as_str()))
}

fn parse_identity_cursor(cursor: &str) -> Option<ExternalUser> {
    let (provider, user) = cursor.split_once(':')?;
    let provider = <Provider as clap::ValueEnum>::from_str(provider, false).ok()?;
    ExternalUser::parse(provider, user).ok()
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Identities {
    identities: Vec<Identity>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/tenants/{id}/identities",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant"), PageQuery),
    responses(
        (status = 200, description = "The tenant's identities", body = Identities),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn list_identities(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<Identities>, ApiError> {
    allowed(&state, &op, tenant, Scope::Read).await?;
    let page = q.page_by_text(parse_identity_cursor)?;
    let mut identities = state
        .store
        .list_identities_page(tenant, page.after.as_ref(), page.fetch())
        .await?;
    let next_cursor = page.finish(&mut identities, |i| identity_cursor(&i.user));
    Ok(ApiJson(Identities {
        identities,
        next_cursor,
    }))
}

#[utoipa::path(
    delete,
    path = "/tenants/{id}/identities/{provider}/{user}",
    tag = "mirror",
    params(
        ("id" = TenantId, Path, description = "The tenant"),
        ("provider" = inline(Provider), Path, description = "Whose user"),
        ("user" = String, Path, description = "The user's id at the provider"),
    ),
    responses(
        (status = 204, description = "Removed"),
        BadRequest, NotFound, OperatorErrors,
    )
)]
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

#[derive(Serialize, utoipa::ToSchema)]
pub struct Channels {
    channels: Vec<SlackChannel>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// Slack channels seen created, and whether a mapping names them.
#[utoipa::path(
    get,
    path = "/tenants/{id}/channels",
    tag = "mirror",
    params(("id" = TenantId, Path, description = "The tenant"), PageQuery),
    responses(
        (status = 200, description = "The channels", body = Channels),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn list_channels(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<Channels>, ApiError> {
    allowed(&state, &op, tenant, Scope::Read).await?;
    let page = q.page_by_text(|c| c.parse::<SlackChannelId>().ok())?;
    let mut channels = state
        .store
        .list_channels_page(tenant, page.after.as_ref(), page.fetch())
        .await?;
    let next_cursor = page.finish(&mut channels, |c| text_cursor(c.channel_id.as_str()));
    Ok(ApiJson(Channels {
        channels,
        next_cursor,
    }))
}
