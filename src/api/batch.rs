//! `POST /api/events`: many events in one request, for producers that emit a lot — each
//! for one agent or a whole tenant, answered one result per event, in order.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::{AgentId, EventId, Seq, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::events::{EventBody, emittable_types};
use crate::auth::Operator;
use crate::bus::{BatchEvent, NewEvent};
use crate::http::responses::{BadRequest, BodyErrors, OperatorErrors};
use crate::http::{ApiError, ApiJson};
use crate::quota::QuotaError;
use crate::state::AppState;
use crate::store::{Agent, AgentStatus, Scope, StoreError};

/// Most events one request may carry.
pub const MAX_EVENTS: usize = 1_000;

/// 1 to 1,000 events, answered in this order.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchBody {
    // Items are read one by one, so a malformed one is that item's 400, not the
    // request's.
    #[schema(value_type = Vec<BatchItem>, min_items = 1, max_items = 1000)]
    events: Vec<Value>,
}

/// One event of a batch: for one agent (`agent_id`) or for every active agent of a
/// tenant (`tenant_id`), exactly one of the two. The rest is the body of
/// `POST /api/agents/{id}/events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchItem {
    agent_id: Option<AgentId>,
    tenant_id: Option<TenantId>,
    #[serde(rename = "type")]
    #[schema(schema_with = emittable_types)]
    kind: String,
    /// The event's payload, given to the agent(s) as is.
    #[schema(value_type = Object)]
    data: Value,
    /// As for one agent's event; refused on a tenant's (400).
    #[schema(min_length = 1, max_length = 200)]
    idempotency_key: Option<String>,
    /// Carried with the event into logs.
    trace_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchResults {
    /// One per event of the request, in its order.
    results: Vec<BatchResult>,
}

/// What became of one event: stored (202) or refused (4xx, with the error a
/// single-event request would have got).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    /// Stored in the agent's inbox (or found stored under its idempotency key).
    Agent {
        /// 202
        status: u16,
        id: EventId,
        seq: Seq,
    },
    /// Stored for every active agent of the tenant.
    Tenant {
        /// 202
        status: u16,
        id: EventId,
        /// How many active agents got it.
        agents: usize,
    },
    /// Refused; nothing stored.
    Refused {
        /// 400, 404, 409 or 429; 503 for a tenant's event whose storage failed after
        /// other events of the request were stored.
        status: u16,
        #[schema(value_type = crate::http::ErrorDetail)]
        error: ItemError,
    },
}

/// The `error` of the envelope, for one event.
#[derive(Debug, Clone, Serialize)]
pub struct ItemError {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
}

impl From<ApiError> for BatchResult {
    fn from(e: ApiError) -> BatchResult {
        let mut details = e.details;
        // No header per event: a rate limit's wait goes with the event.
        if let (Some(wait), Some(Value::Object(d))) = (e.retry_after, details.as_mut()) {
            d.insert("retry_after_s".into(), wait.into());
        }
        BatchResult::Refused {
            status: e.status.as_u16(),
            error: ItemError {
                code: e.code,
                message: e.message,
                details,
            },
        }
    }
}

const ACCEPTED: u16 = StatusCode::ACCEPTED.as_u16();

/// One event of the request as read: where it goes, or its answer already.
enum Item {
    Agent(AgentId, NewEvent),
    Tenant(TenantId, NewEvent),
    Done(BatchResult),
}

/// One event once its agent is checked.
enum Checked {
    Agent(BatchEvent),
    Tenant(TenantId, NewEvent),
    Done(BatchResult),
}

impl Item {
    fn parse(value: Value) -> Item {
        let item: BatchItem = match serde_json::from_value(value) {
            Ok(item) => item,
            Err(e) => return Item::Done(ApiError::bad_request(e.to_string()).into()),
        };
        let body = EventBody {
            kind: item.kind,
            data: item.data,
            idempotency_key: item.idempotency_key,
            trace_id: item.trace_id,
        };
        let parsed = match (item.agent_id, item.tenant_id) {
            (Some(agent), None) => body.into_event().map(|e| Item::Agent(agent, e)),
            (None, Some(tenant)) => body.into_tenant_event().map(|e| Item::Tenant(tenant, e)),
            _ => Err(ApiError::bad_request(
                "an event names exactly one of agent_id and tenant_id",
            )),
        };
        parsed.unwrap_or_else(|e| Item::Done(e.into()))
    }
}

impl Checked {
    /// The tenant whose quota the event takes from.
    fn tenant(&self) -> Option<TenantId> {
        match self {
            Checked::Agent(e) => Some(e.tenant),
            Checked::Tenant(tenant, _) => Some(*tenant),
            Checked::Done(_) => None,
        }
    }
}

/// Stores up to 1,000 events in one request, each for an agent or a whole tenant.
///
/// An event names an agent (`agent_id`) or a tenant (`tenant_id`, every active agent).
/// The agents' events are stored in one commit; several for one agent get ascending
/// seqs in request order. Each is checked as `POST /api/agents/{id}/events` or
/// `POST /api/tenants/{id}/events` checks it and answered in `results`, in request
/// order: 202 once stored, or the error that request would have got. A tenant's events
/// are admitted by its quota together. A storage failure before anything is stored is
/// this request's 503.
#[utoipa::path(
    post,
    path = "/events",
    tag = "events",
    request_body = BatchBody,
    responses(
        (status = 200, description = "One result per event, in request order", body = BatchResults),
        BadRequest, BodyErrors, OperatorErrors,
    )
)]
pub async fn emit_batch(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(body): ApiJson<BatchBody>,
) -> Result<ApiJson<BatchResults>, ApiError> {
    op.require(Scope::Write)?;
    let n = body.events.len();
    if n == 0 || n > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "events must hold 1 to {MAX_EVENTS} events; it holds {n}"
        )));
    }
    let items: Vec<Item> = body.events.into_iter().map(Item::parse).collect();
    let mut items = check_agents(&state, &op, items).await?;
    check_tenants(&state, &op, &mut items).await?;
    admit(&state, &mut items).await?;
    let results = emit(&state, items).await?;
    Ok(ApiJson(BatchResults { results }))
}

/// Agents' events checked as a single emit checks them. The agents are read in one go
/// (the cache first).
async fn check_agents(
    state: &AppState,
    op: &Operator,
    items: Vec<Item>,
) -> Result<Vec<Checked>, ApiError> {
    let ids: Vec<AgentId> = items
        .iter()
        .filter_map(|i| match i {
            Item::Agent(id, _) => Some(*id),
            _ => None,
        })
        .collect();
    let agents = if ids.is_empty() {
        HashMap::new()
    } else {
        state.ctx.agents(&ids).await?
    };
    let check = |item| match item {
        Item::Agent(id, event) => {
            let agent = agents.get(&id).ok_or_else(|| ApiError::not_found("agent"));
            match agent.and_then(|a| checked_agent(op, a)) {
                Ok(a) => Checked::Agent(BatchEvent {
                    tenant: a.tenant_id,
                    agent: a.id,
                    event,
                }),
                Err(e) => Checked::Done(e.into()),
            }
        }
        Item::Tenant(tenant, event) => Checked::Tenant(tenant, event),
        Item::Done(answer) => Checked::Done(answer),
    };
    Ok(items.into_iter().map(check).collect())
}

/// The agent, if this operator may emit to it.
fn checked_agent<'a>(op: &Operator, agent: &'a Agent) -> Result<&'a Agent, ApiError> {
    op.tenant(agent.tenant_id)
        .map_err(|_| ApiError::not_found("agent"))?;
    if agent.status != AgentStatus::Active {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "agent_disabled",
            "the agent is disabled",
        ));
    }
    Ok(agent)
}

/// Tenants' events: refused for a tenant this key does not see or that does not exist.
async fn check_tenants(
    state: &AppState,
    op: &Operator,
    items: &mut [Checked],
) -> Result<(), ApiError> {
    let mut exists: HashMap<TenantId, bool> = HashMap::new();
    for item in items.iter_mut() {
        let Checked::Tenant(tenant, _) = item else {
            continue;
        };
        if let Err(e) = op.tenant(*tenant) {
            *item = Checked::Done(e.into());
            continue;
        }
        let found = match exists.get(tenant) {
            Some(found) => *found,
            None => {
                let found = match state.ctx.tenant(*tenant).await {
                    Ok(_) => true,
                    Err(StoreError::NotFound(_)) => false,
                    Err(e) => return Err(e.into()),
                };
                exists.insert(*tenant, found);
                found
            }
        };
        if !found {
            *item = Checked::Done(ApiError::not_found("tenant").into());
        }
    }
    Ok(())
}

/// Takes each tenant's events from its quota at once; a refusal refuses them all.
async fn admit(state: &AppState, items: &mut [Checked]) -> Result<(), ApiError> {
    let mut counts: HashMap<TenantId, u32> = HashMap::new();
    for tenant in items.iter().filter_map(Checked::tenant) {
        *counts.entry(tenant).or_default() += 1;
    }
    let mut refused: HashMap<TenantId, BatchResult> = HashMap::new();
    for (tenant, n) in counts {
        match state.quotas.admit_events(tenant, n).await {
            Ok(()) => {}
            Err(QuotaError::Refused(r)) => {
                refused.insert(tenant, ApiError::from(r).into());
            }
            Err(QuotaError::Store(e)) => return Err(e.into()),
        }
    }
    for item in items.iter_mut() {
        if let Some(answer) = item.tenant().and_then(|t| refused.get(&t)) {
            *item = Checked::Done(answer.clone());
        }
    }
    Ok(())
}

/// Stores what passed: the agents' events in one append first (its failure is the
/// request's), then each tenant's event. A tenant's event that fails once something
/// is stored gets its own 503, and the ones after it the same without trying: answering
/// the whole request 503 then would hide events that are stored.
async fn emit(state: &AppState, items: Vec<Checked>) -> Result<Vec<BatchResult>, ApiError> {
    let batch: Vec<BatchEvent> = items
        .iter()
        .filter_map(|i| match i {
            Checked::Agent(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    let mut stored_any = !batch.is_empty();
    let mut emitted = state.hub.emit_batch(batch).await?.into_iter();
    let mut failed: Option<BatchResult> = None;
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let result = match item {
            Checked::Agent(_) => match emitted.next() {
                Some(e) => BatchResult::Agent {
                    status: ACCEPTED,
                    id: e.event_id,
                    seq: e.seq,
                },
                None => return Err(ApiError::internal()),
            },
            Checked::Tenant(tenant, event) => match &failed {
                Some(answer) => answer.clone(),
                None => match state.hub.emit_to_tenant(tenant, event).await {
                    Ok(e) => {
                        stored_any = true;
                        BatchResult::Tenant {
                            status: ACCEPTED,
                            id: e.event_id,
                            agents: e.agents,
                        }
                    }
                    Err(e) if !stored_any => return Err(e.into()),
                    Err(e) => failed.insert(ApiError::from(e).into()).clone(),
                },
            },
            Checked::Done(answer) => answer,
        };
        results.push(result);
    }
    Ok(results)
}
