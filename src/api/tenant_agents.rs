//! Agents as operators manage them: `GET|POST /api/tenants/{id}/agents`,
//! `GET|PATCH /api/agents/{id}`, `POST /api/agents/{id}/disable|enable|rotate-secret`.
//! Creating and changing agents needs the `admin` scope; a tenant-bound key reaches
//! only its tenant's agents (others are 404).

use std::str::FromStr;

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::{AgentId, ClickUpUserId, SlackUserId, TenantId, close};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::page::PageQuery;
use crate::admin::{self, Actor, AgentSpec, AgentWithSecret};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, BodyErrors, Conflict, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::{Agent, AgentChange, AgentFilter, AgentStatus, Scope};

/// Agents made by one request: each secret costs an argon2 hash, and the request must
/// end within `--db-request-timeout`. The CLI makes more.
const MAX_BULK: u64 = 20;

/// The agent, if this operator may see it (read from the database, not a cache: an
/// operator reads back what it just changed).
async fn visible(state: &AppState, op: &Operator, id: AgentId) -> Result<Agent, ApiError> {
    let agent = state.store.get_agent(id).await?;
    op.tenant(agent.tenant_id)
        .map_err(|_| ApiError::not_found("agent"))?;
    Ok(agent)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only agents with this status.
    #[param(value_type = Option<AgentStatus>)]
    status: Option<String>,
    /// Only agents whose name starts with this.
    name: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentPage {
    agents: Vec<Agent>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// The tenant's agents, oldest first.
#[utoipa::path(
    get,
    path = "/tenants/{id}/agents",
    tag = "agents",
    params(("id" = TenantId, Path, description = "The tenant"), ListQuery, PageQuery),
    responses(
        (status = 200, description = "A page of agents", body = AgentPage),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<ApiJson<AgentPage>, ApiError> {
    op.require(Scope::Read)?;
    op.tenant(tenant)?;
    let page = q.page.page()?;
    let status = match q.status.as_deref() {
        None => None,
        Some("active") => Some(AgentStatus::Active),
        Some("disabled") => Some(AgentStatus::Disabled),
        Some(_) => {
            return Err(ApiError::invalid_fields([(
                "status",
                "must be active or disabled".to_owned(),
            )]));
        }
    };
    state.store.get_tenant(tenant).await?;
    let filter = AgentFilter {
        status,
        name_prefix: q.name,
    };
    let mut agents = state
        .store
        .list_agents_page(tenant, &filter, page.after, page.fetch())
        .await?;
    let next = page.finish(&mut agents, |a| *a.id.as_uuid());
    Ok(ApiJson(AgentPage {
        agents,
        next_cursor: next,
    }))
}

/// One agent (`name`, optional users) or many (`count`, `name_prefix`: named
/// `{prefix}1`…`{prefix}{count}`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewAgents {
    /// One agent: its name.
    name: Option<String>,
    /// One agent: its ClickUp user id.
    #[schema(value_type = Option<String>)]
    clickup_user: Option<Value>,
    /// One agent: its Slack user id.
    #[schema(value_type = Option<String>)]
    slack_user: Option<Value>,
    /// Many agents: how many (1–20; the CLI creates more).
    #[schema(minimum = 1, maximum = 20)]
    count: Option<u64>,
    /// Many agents: named `{name_prefix}1`…
    name_prefix: Option<String>,
}

impl NewAgents {
    fn specs(self) -> Result<Vec<AgentSpec>, ApiError> {
        match (self.name, self.count, self.name_prefix) {
            (Some(name), None, None) => Ok(vec![AgentSpec {
                name,
                clickup_user: user_id("clickup_user", self.clickup_user)?,
                slack_user: user_id("slack_user", self.slack_user)?,
            }]),
            (None, Some(count), Some(prefix)) => {
                if !(1..=MAX_BULK).contains(&count) {
                    return Err(ApiError::invalid_fields([(
                        "count",
                        format!("must be from 1 to {MAX_BULK} (the CLI creates more)"),
                    )]));
                }
                Ok((1..=count)
                    .map(|i| AgentSpec {
                        name: format!("{prefix}{i}"),
                        clickup_user: None,
                        slack_user: None,
                    })
                    .collect())
            }
            _ => Err(ApiError::invalid_fields([(
                "name",
                "give name (one agent), or count with name_prefix (many)".to_owned(),
            )])),
        }
    }
}

/// A provider user id given as a string (or, for ClickUp, a number).
fn user_id<T: FromStr<Err = nexus_proto::InvalidExternalId>>(
    field: &'static str,
    value: Option<Value>,
) -> Result<Option<T>, ApiError> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(ApiError::invalid_fields([(
                field,
                "must be a string".into(),
            )]));
        }
    };
    text.parse()
        .map(Some)
        .map_err(|e: nexus_proto::InvalidExternalId| {
            ApiError::invalid_fields([(field, e.to_string())])
        })
}

/// Agents made by one request, each with its client secret (shown this once).
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedAgents {
    agents: Vec<AgentWithSecret>,
}

/// Creates one agent or many (`admin`).
#[utoipa::path(
    post,
    path = "/tenants/{id}/agents",
    tag = "agents",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body = NewAgents,
    responses(
        (status = 201, description = "The new agents with their secrets", body = CreatedAgents),
        BadRequest, NotFound, Conflict, BodyErrors, OperatorErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiJson(body): ApiJson<NewAgents>,
) -> Result<(StatusCode, ApiJson<CreatedAgents>), ApiError> {
    op.require(Scope::Admin)?;
    op.tenant(tenant)?;
    let specs = body.specs()?;
    let actor = Actor::key(&op.0);
    let created: Vec<AgentWithSecret> =
        admin::create_agents(&state.store, &state.config.tiers, &actor, tenant, specs).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedAgents { agents: created }),
    ))
}

/// An agent with its ClickUp and Slack users.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    #[serde(flatten)]
    agent: Agent,
    clickup_user: Option<String>,
    slack_user: Option<String>,
}

async fn view(state: &AppState, agent: Agent) -> Result<AgentView, ApiError> {
    let (clickup_user, slack_user) = state.store.agent_users(agent.id).await?;
    Ok(AgentView {
        agent,
        clickup_user,
        slack_user,
    })
}

#[utoipa::path(
    get,
    path = "/agents/{id}",
    tag = "agents",
    params(("id" = AgentId, Path, description = "The agent")),
    responses(
        (status = 200, description = "The agent with its users", body = AgentView),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<ApiJson<AgentView>, ApiError> {
    op.require(Scope::Read)?;
    let agent = visible(&state, &op, id).await?;
    Ok(ApiJson(view(&state, agent).await?))
}

/// Absent: keep; `null`: remove; a value: set.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Value>>, D::Error> {
    Option::<Value>::deserialize(d).map(Some)
}

/// What to change; absent fields stay, `null` removes a user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AgentPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    clickup_user: Option<Option<Value>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    slack_user: Option<Option<Value>>,
}

/// Renames the agent or changes its users (`admin`).
#[utoipa::path(
    patch,
    path = "/agents/{id}",
    tag = "agents",
    params(("id" = AgentId, Path, description = "The agent")),
    request_body = AgentPatch,
    responses(
        (status = 200, description = "The agent as changed", body = AgentView),
        BadRequest, NotFound, Conflict, BodyErrors, OperatorErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<AgentId>,
    ApiJson(body): ApiJson<AgentPatch>,
) -> Result<ApiJson<AgentView>, ApiError> {
    op.require(Scope::Admin)?;
    visible(&state, &op, id).await?;
    let change = AgentChange {
        name: body.name,
        clickup_user: body
            .clickup_user
            .map(|v| user_id::<ClickUpUserId>("clickup_user", v))
            .transpose()?,
        slack_user: body
            .slack_user
            .map(|v| user_id::<SlackUserId>("slack_user", v))
            .transpose()?,
    };
    let agent = admin::update_agent(&state.store, &Actor::key(&op.0), id, change).await?;
    state.ctx.forget_operator_changes();
    Ok(ApiJson(view(&state, agent).await?))
}

/// Refuses the agent's tokens and tools; its session here closes with 4003 at once, on
/// other nodes within `--reconcile-interval`.
#[utoipa::path(
    post,
    path = "/agents/{id}/disable",
    tag = "agents",
    params(("id" = AgentId, Path, description = "The agent")),
    responses(
        (status = 200, description = "The agent, disabled", body = Agent),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn disable(
    state: State<AppState>,
    op: Operator,
    id: ApiPath<AgentId>,
) -> Result<ApiJson<Agent>, ApiError> {
    set_status(state, op, id, AgentStatus::Disabled).await
}

/// Lets a disabled agent authenticate again.
#[utoipa::path(
    post,
    path = "/agents/{id}/enable",
    tag = "agents",
    params(("id" = AgentId, Path, description = "The agent")),
    responses(
        (status = 200, description = "The agent, active", body = Agent),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn enable(
    state: State<AppState>,
    op: Operator,
    id: ApiPath<AgentId>,
) -> Result<ApiJson<Agent>, ApiError> {
    set_status(state, op, id, AgentStatus::Active).await
}

async fn set_status(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<AgentId>,
    status: AgentStatus,
) -> Result<ApiJson<Agent>, ApiError> {
    op.require(Scope::Admin)?;
    visible(&state, &op, id).await?;
    let agent = admin::set_agent_status(&state.store, &Actor::key(&op.0), id, status).await?;
    state.ctx.forget_operator_changes();
    if status == AgentStatus::Disabled {
        state.hub.sessions().close_agent(id, close::AGENT_DISABLED);
    }
    Ok(ApiJson(agent))
}

/// A new client secret, shown this once; tokens already issued stay valid until they
/// expire (revoke them too if the old secret leaked).
#[utoipa::path(
    post,
    path = "/agents/{id}/rotate-secret",
    tag = "agents",
    params(("id" = AgentId, Path, description = "The agent")),
    responses(
        (status = 200, description = "The agent with its new secret", body = AgentWithSecret),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<ApiJson<AgentWithSecret>, ApiError> {
    op.require(Scope::Admin)?;
    visible(&state, &op, id).await?;
    Ok(ApiJson(
        admin::rotate_secret(&state.store, &Actor::key(&op.0), id).await?,
    ))
}
