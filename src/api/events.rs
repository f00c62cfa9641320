//! Routing endpoints: emit to an agent or a whole tenant, see who is online, page an inbox.

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::{AgentId, EventType, Seq, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use super::pull::AgentToken;
use crate::admin::OnlineAgent;
use crate::auth::Operator;
use crate::bus::{EmitError, Emitted, NewEvent, TenantEmitted};
use crate::group_commit::SubmitError;
use crate::http::responses::{BadRequest, BodyErrors, NotFound, OperatorErrors, Unavailable};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::state::AppState;
use crate::store::{Agent, AgentStatus, Scope};

/// An event for an agent's inbox, as an operator sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EventBody {
    #[serde(rename = "type")]
    #[schema(schema_with = emittable_types)]
    pub(super) kind: String,
    /// The event's payload, given to the agent as is.
    #[schema(value_type = Object)]
    pub(super) data: Value,
    /// A retry with the same key stores nothing new and answers the first event (one
    /// agent only): 1–200 bytes, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    pub(super) idempotency_key: Option<String>,
    /// Carried with the event into logs (ignored when empty, over 128 bytes or holding
    /// a control character).
    pub(super) trace_id: Option<String>,
}

/// The event types an operator may send (`tool_result` is the tools' own).
pub(super) fn emittable_types() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["task_assigned", "context_update", "wake_up"]))
        .build()
}

impl EventBody {
    pub(super) fn into_event(self) -> Result<NewEvent, ApiError> {
        let kind = match self.kind.parse::<EventType>() {
            Ok(k @ (EventType::TaskAssigned | EventType::ContextUpdate | EventType::WakeUp)) => k,
            _ => {
                return Err(ApiError::bad_request(
                    "type must be task_assigned, context_update or wake_up",
                ));
            }
        };
        if !self.data.is_object() {
            return Err(ApiError::bad_request("data must be a JSON object"));
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > 200 || key.chars().any(char::is_control))
        {
            return Err(ApiError::bad_request(
                "idempotency_key must be 1–200 bytes without control characters",
            ));
        }
        let trace_id = self
            .trace_id
            .filter(|t| !t.is_empty() && t.len() <= 128 && !t.chars().any(char::is_control));
        Ok(NewEvent {
            idempotency_key: self.idempotency_key,
            ..NewEvent::from_json(kind, &self.data).trace(trace_id.as_deref())
        })
    }

    /// As [`EventBody::into_event`], for every agent of a tenant: no idempotency key.
    pub(super) fn into_tenant_event(self) -> Result<NewEvent, ApiError> {
        if self.idempotency_key.is_some() {
            return Err(ApiError::bad_request(
                "idempotency_key applies to single-agent events (POST /api/agents/{id}/events)",
            ));
        }
        self.into_event()
    }
}

impl From<EmitError> for ApiError {
    fn from(e: EmitError) -> ApiError {
        match e {
            EmitError::Store(e) => e.into(),
            EmitError::Append(SubmitError::Store(e)) => ApiError::from(&*e),
            EmitError::Append(SubmitError::Stopped) => {
                ApiError::unavailable("the node is shutting down")
            }
            EmitError::Append(SubmitError::TimedOut(_)) => {
                ApiError::unavailable("storage did not answer in time; retry later")
            }
        }
    }
}

/// The agent, if this operator may see it; one of another tenant is "not found", as if
/// it did not exist.
pub(super) async fn visible_agent(
    state: &AppState,
    op: &Operator,
    id: AgentId,
) -> Result<Agent, ApiError> {
    let agent = state.ctx.agent(id).await?;
    op.tenant(agent.tenant_id)
        .map_err(|_| ApiError::not_found("agent"))?;
    Ok(agent)
}

/// Stores an event in the agent's inbox and pushes it to the agent if it is online.
#[utoipa::path(
    post,
    path = "/agents/{id}/events",
    tag = "events",
    params(("id" = AgentId, Path, description = "The agent")),
    request_body = EventBody,
    responses(
        (status = 202, description = "Stored; delivered at least once", body = Emitted),
        BadRequest, NotFound,
        (status = 409, description = "The agent is disabled (`agent_disabled`).", body = ErrorBody),
        BodyErrors, OperatorErrors,
    )
)]
pub async fn emit_to_agent(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<AgentId>,
    ApiJson(body): ApiJson<EventBody>,
) -> Result<(StatusCode, ApiJson<Emitted>), ApiError> {
    op.require(Scope::Write)?;
    let event = body.into_event()?;
    let agent = visible_agent(&state, &op, id).await?;
    if agent.status != AgentStatus::Active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "agent_disabled",
            "the agent is disabled",
        ));
    }
    state.quotas.admit_events(agent.tenant_id, 1).await?;
    let emitted = state
        .hub
        .emit_to_agent(agent.tenant_id, agent.id, event)
        .await?;
    Ok((StatusCode::ACCEPTED, ApiJson(emitted)))
}

/// Stores the same event in the inbox of every active agent of the tenant.
#[utoipa::path(
    post,
    path = "/tenants/{id}/events",
    tag = "events",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body = EventBody,
    responses(
        (status = 202, description = "Stored for every active agent", body = TenantEmitted),
        BadRequest, NotFound, BodyErrors, OperatorErrors,
    )
)]
pub async fn emit_to_tenant(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<TenantId>,
    ApiJson(body): ApiJson<EventBody>,
) -> Result<(StatusCode, ApiJson<TenantEmitted>), ApiError> {
    op.require(Scope::Write)?;
    op.tenant(id)?;
    let event = body.into_tenant_event()?;
    state.store.get_tenant(id).await?;
    state.quotas.admit_events(id, 1).await?;
    let emitted = state.hub.emit_to_tenant(id, event).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(emitted)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OnlineAgents {
    agents: Vec<OnlineAgent>,
}

/// The tenant's agents online now, the same on every node.
#[utoipa::path(
    get,
    path = "/tenants/{id}/agents/online",
    tag = "agents",
    params(("id" = TenantId, Path, description = "The tenant")),
    responses(
        (status = 200, description = "Online agents", body = OnlineAgents),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn online(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<TenantId>,
) -> Result<ApiJson<OnlineAgents>, ApiError> {
    op.require(Scope::Read)?;
    op.tenant(id)?;
    state.store.get_tenant(id).await?;
    let entries = state.hub.online_agents(id).await?;
    let agents = crate::admin::online_agents(&state.store, id, entries).await?;
    Ok(ApiJson(OnlineAgents { agents }))
}

/// The agents of the caller's tenant online now, for an agent (its access token): what
/// `GET /api/tenants/{id}/agents/online` answers operators (the MCP bridge's
/// `nexus_online_agents`).
#[utoipa::path(
    get,
    path = "/agents/me/online",
    tag = "agents",
    security(("agent_token" = [])),
    responses(
        (status = 200, description = "Online agents of the caller's tenant", body = OnlineAgents),
        (status = 401, description = "No access token, or an invalid, expired or revoked one, an operator key, or a disabled agent (`unauthorized`)", body = crate::http::ErrorBody),
        (status = 403, description = "The agent's tenant is suspended (`tenant_suspended`)", body = crate::http::ErrorBody),
        Unavailable,
    )
)]
pub async fn online_peers(
    State(state): State<AppState>,
    AgentToken { tenant, .. }: AgentToken,
) -> Result<ApiJson<OnlineAgents>, ApiError> {
    let entries = state.hub.online_agents(tenant).await?;
    let agents = crate::admin::online_agents(&state.store, tenant, entries).await?;
    Ok(ApiJson(OnlineAgents { agents }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Events after this seq (default 0: from the oldest kept).
    after_seq: Option<u64>,
    /// At most this many (1–1000, default 100; out of range is clamped).
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct InboxItem {
    seq: Seq,
    id: nexus_proto::EventId,
    #[serde(rename = "type")]
    kind: EventType,
    #[schema(format = DateTime)]
    ts: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[schema(value_type = Object)]
    data: Box<serde_json::value::RawValue>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct InboxPage {
    events: Vec<InboxItem>,
    /// Pass as `after_seq` for the next page; `null` on the last one.
    next_after_seq: Option<Seq>,
    /// The newest seq in the inbox.
    last_seq: Seq,
    /// What the agent has acked.
    acked_seq: Seq,
}

/// A page of the agent's inbox, oldest first.
#[utoipa::path(
    get,
    path = "/agents/{id}/inbox",
    tag = "events",
    params(("id" = AgentId, Path, description = "The agent"), InboxQuery),
    responses(
        (status = 200, description = "A page of the inbox", body = InboxPage),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn inbox(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<AgentId>,
    ApiQuery(q): ApiQuery<InboxQuery>,
) -> Result<ApiJson<InboxPage>, ApiError> {
    op.require(Scope::Read)?;
    let agent = visible_agent(&state, &op, id).await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let after = Seq::new(q.after_seq.unwrap_or(0));
    let events = state.store.read_inbox(agent.id, after, limit).await?;
    let cursor = state.store.cursor(agent.id).await?;
    let next = (events.len() as u32 == limit)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    let items: Vec<InboxItem> = events
        .into_iter()
        .map(|e| InboxItem {
            seq: e.seq,
            id: e.event_id,
            kind: e.kind,
            ts: crate::time::rfc3339(e.created_at),
            trace_id: e.trace_id.map(|t| t.to_string()),
            data: serde_json::value::RawValue::from_string(e.data.to_string())
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
        })
        .collect();
    Ok(ApiJson(InboxPage {
        events: items,
        next_after_seq: next,
        last_seq: cursor.last_seq,
        acked_seq: cursor.acked_seq,
    }))
}
