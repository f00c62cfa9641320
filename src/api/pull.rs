//! `/api/agents/me/*`: an agent without a socket pulls its inbox over HTTP with its
//! access token (`GET …/inbox`, a long poll) and acks what it handled (`POST …/ack`).
//! Each event is the exact JSON the socket would send, in seq order, at least once.
//!
//! A waiting poll is woken by commits on this node ([`crate::bus::InboxWatch`]). The
//! broker addresses nodes holding sockets (presence), never a poll, so in the cluster
//! profile a waiting poll also re-reads the inbox every [`CLUSTER_REREAD`] to see
//! events committed through other nodes. These routes are outside the API's request
//! bound (a poll waits up to 30 s); each storage step is bounded by
//! `--db-request-timeout` instead, and a poll ends at shutdown.

use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use nexus_proto::{AgentId, EventType, Gap, Seq, ServerMsg, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::sessions::{Caller, bounded};
use crate::http::responses::{BadRequest, BodyErrors, Unavailable};
use crate::http::{ApiError, ApiJson, ApiQuery, storage_timed_out};
use crate::state::AppState;
use crate::store::InboxEvent;
use crate::telemetry::catalog;

/// How often a waiting poll re-reads the inbox in the cluster profile.
pub const CLUSTER_REREAD: Duration = Duration::from_secs(1);
const MAX_WAIT_S: u64 = 30;
const MAX_LIMIT: u32 = 500;
const DEFAULT_LIMIT: u32 = 100;

/// The calling agent, from its access token (as `GET /agents` checks it). An operator
/// key is refused: the endpoints taking it act for the caller itself.
pub(super) struct AgentToken {
    pub agent: AgentId,
    pub tenant: TenantId,
}

impl FromRequestParts<AppState> for AgentToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bound = state.config.serve.db.request_timeout;
        let caller = tokio::time::timeout(bound, Caller::from_request_parts(parts, state))
            .await
            .map_err(|_| timed_out(bound))??;
        match caller {
            Caller::Agent { agent, tenant } => Ok(AgentToken { agent, tenant }),
            Caller::Operator(_) => Err(ApiError::unauthorized(
                "an agent's access token is required (Authorization: Bearer <access token>)",
            )),
        }
    }
}

fn timed_out(bound: Duration) -> ApiError {
    storage_timed_out("api", bound);
    ApiError::unavailable("storage did not answer in time; retry later")
}

/// Numbers are read as text so that a bad one is named in `details.fields`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PullQuery {
    /// Events after this seq (default: the agent's acked seq).
    #[param(value_type = Option<u64>)]
    after_seq: Option<String>,
    /// Seconds to wait for an event when there is none (0–30, default 0).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 30)]
    wait: Option<String>,
    /// At most this many events (1–500, default 100); a `gap` comes on top.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
}

struct Pull {
    after_seq: Option<Seq>,
    wait: Duration,
    limit: u32,
}

impl PullQuery {
    fn parse(self) -> Result<Pull, ApiError> {
        let mut bad = Vec::new();
        let after_seq = match self.after_seq.as_deref().map(|s| s.trim().parse::<Seq>()) {
            Some(Ok(seq)) => Some(seq),
            Some(Err(_)) => {
                bad.push(("after_seq", "a non-negative integer".to_owned()));
                None
            }
            None => None,
        };
        let wait = match self.wait.as_deref().map(|s| s.trim().parse::<u64>()) {
            Some(Ok(s)) if s <= MAX_WAIT_S => s,
            None => 0,
            Some(_) => {
                bad.push(("wait", format!("seconds, 0–{MAX_WAIT_S}")));
                0
            }
        };
        let limit = match self.limit.as_deref().map(|s| s.trim().parse::<u32>()) {
            Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
            None => DEFAULT_LIMIT,
            Some(_) => {
                bad.push(("limit", format!("1–{MAX_LIMIT}")));
                DEFAULT_LIMIT
            }
        };
        if !bad.is_empty() {
            return Err(ApiError::invalid_fields(bad));
        }
        Ok(Pull {
            after_seq,
            wait: Duration::from_secs(wait),
            limit,
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Pulled {
    /// Each as the socket sends it (`{"type","id","seq","ts","trace_id"?,"data"}`), in
    /// seq order; first a `{"type":"gap","data":{"after_seq","first_available_seq"}}`
    /// when retention removed events after `after_seq`.
    #[schema(value_type = Vec<Object>)]
    events: Vec<Box<RawValue>>,
    /// What the agent has acked: the default `after_seq` of its next poll.
    acked_seq: Seq,
}

/// The agent's inbox events after `after_seq`, waiting up to `wait` seconds for one.
#[utoipa::path(
    get,
    path = "/agents/me/inbox",
    tag = "agents",
    security(("agent_token" = [])),
    params(PullQuery),
    responses(
        (status = 200, description = "The events (none if none came within `wait`)", body = Pulled),
        BadRequest,
        (status = 401, description = "No access token, or an invalid, expired or revoked one, an operator key, or a disabled agent (`unauthorized`)", body = crate::http::ErrorBody),
        (status = 403, description = "The agent's tenant is suspended (`tenant_suspended`)", body = crate::http::ErrorBody),
        Unavailable,
    )
)]
pub async fn inbox(
    State(state): State<AppState>,
    AgentToken { agent, .. }: AgentToken,
    ApiQuery(q): ApiQuery<PullQuery>,
) -> Result<ApiJson<Pulled>, ApiError> {
    let pull = q.parse()?;
    let watch = state.hub.watch_inbox(agent);
    let deadline = Instant::now() + pull.wait;
    let reread = state.redis.is_some().then_some(CLUSTER_REREAD);
    loop {
        // Made before the read: a commit after the read still ends the wait.
        let changed = watch.changed();
        let pulled = read(&state, agent, &pull).await?;
        let now = Instant::now();
        if !pulled.events.is_empty() || now >= deadline {
            return Ok(ApiJson(pulled));
        }
        let until = reread.map_or(deadline, |every| deadline.min(now + every));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(until) => {}
            _ = state.shutdown.cancelled() => return Ok(ApiJson(pulled)),
        }
    }
}

/// One read of the inbox: the cursor first, so a page that comes back empty while the
/// cursor says more exists means retention removed it (a gap, as the socket says).
async fn read(state: &AppState, agent: AgentId, pull: &Pull) -> Result<Pulled, ApiError> {
    let cursor = bounded(state, state.store.cursor(agent)).await?;
    let after = pull.after_seq.unwrap_or(cursor.acked_seq);
    let page = bounded(state, state.hub.replay_page(agent, after, pull.limit)).await?;
    let gap = match page.first() {
        Some(first) if first.seq > after.next() => Some(first.seq),
        None if cursor.last_seq > after => Some(cursor.last_seq.next()),
        _ => None,
    };
    let mut events = Vec::with_capacity(page.len() + 1);
    if let Some(first_available_seq) = gap {
        metrics::counter!(catalog::INBOX_GAPS).increment(1);
        let data = Gap {
            after_seq: after,
            first_available_seq,
        };
        events.push(raw(nexus_proto::encode(&ServerMsg::Gap { data })));
    }
    events.extend(page.iter().map(|ev| raw(frame(state, agent, ev))));
    Ok(Pulled {
        events,
        acked_seq: cursor.acked_seq,
    })
}

/// The event as the socket frames it; a `tool_result` handed over no longer waits.
fn frame(state: &AppState, agent: AgentId, ev: &InboxEvent) -> String {
    if ev.kind == EventType::ToolResult {
        state.gateway.tools.answered(agent, &ev.data);
    }
    metrics::counter!(catalog::EVENTS_DELIVERED, "type" => ev.kind.as_str()).increment(1);
    let ts = chrono::DateTime::from_timestamp_millis(ev.created_at).unwrap_or_default();
    nexus_proto::encode_event(
        ev.kind,
        ev.event_id,
        ev.seq,
        ts,
        ev.trace_id.as_deref(),
        &ev.data,
    )
}

/// The encoders write JSON; a failure here would be a bug in them, sent as `null`.
fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    /// Every event up to this seq is handled (cumulative).
    seq: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Acked {
    /// The agent's acked seq now: never lower than before.
    acked_seq: Seq,
}

/// Acks every event up to `seq`, durably before answering; a later poll without
/// `after_seq`, or a socket connect, resumes after it.
#[utoipa::path(
    post,
    path = "/agents/me/ack",
    tag = "agents",
    security(("agent_token" = [])),
    request_body = AckBody,
    responses(
        (status = 200, description = "Stored", body = Acked),
        (status = 400, description = "`seq` is past the agent's last event (`invalid`; `details.fields.seq`), or the body is malformed (`invalid_request`)", body = crate::http::ErrorBody),
        (status = 401, description = "No access token, or an invalid, expired or revoked one, an operator key, or a disabled agent (`unauthorized`)", body = crate::http::ErrorBody),
        (status = 403, description = "The agent's tenant is suspended (`tenant_suspended`)", body = crate::http::ErrorBody),
        BodyErrors, Unavailable,
    )
)]
pub async fn ack(
    State(state): State<AppState>,
    AgentToken { agent, .. }: AgentToken,
    ApiJson(body): ApiJson<AckBody>,
) -> Result<ApiJson<Acked>, ApiError> {
    let seq = Seq::new(body.seq);
    let cursor = bounded(&state, state.store.cursor(agent)).await?;
    if seq > cursor.last_seq {
        return Err(ApiError::invalid_fields([(
            "seq",
            format!("past the last event's seq ({})", cursor.last_seq),
        )]));
    }
    if seq > cursor.acked_seq {
        bounded(&state, state.hub.ack_now(agent, seq)).await?;
    }
    Ok(ApiJson(Acked {
        acked_seq: cursor.acked_seq.max(seq),
    }))
}
