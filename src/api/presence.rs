//! `/api/presence` and `/api/presence/stream`: who is online in a tenant, with each
//! agent's node and inbox lag; the stream keeps an operator's view live.
//!
//! The stream re-reads presence every [`REREAD`] and sends the list whenever it
//! changed. Presence's own change feed ([`crate::presence::Presence::subscribe`]) only
//! carries changes made through this node, so it serves to answer those at once; the
//! re-read is what makes agents on other nodes of a cluster appear and disappear.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use nexus_proto::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};

use crate::admin::overview::{self, AgentPresence};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiQuery, storage_timed_out};
use crate::presence::PresenceChange;
use crate::state::AppState;
use crate::store::Scope;

/// How often the stream re-reads presence: an agent connecting or leaving on any node
/// shows within this plus one read.
const REREAD: Duration = Duration::from_secs(1);

/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PresenceQuery {
    /// The tenant; a tenant-bound key may leave it out.
    tenant: Option<TenantId>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Presence {
    agents: Vec<AgentPresence>,
}

/// The tenant asked for, or the key's own; a global key must name one.
fn tenant_of(op: &Operator, q: &PresenceQuery) -> Result<TenantId, ApiError> {
    let tenant = q.tenant.or(op.0.tenant_id).ok_or_else(|| {
        ApiError::bad_request("tenant: required (this key is not bound to a tenant)")
    })?;
    op.tenant(tenant)?;
    Ok(tenant)
}

async fn read(state: &AppState, tenant: TenantId) -> Result<Vec<AgentPresence>, ApiError> {
    let entries = state.hub.online_agents(tenant).await?;
    Ok(overview::presence(&state.store, tenant, entries).await?)
}

/// The tenant's online agents, with node, connection times and inbox lag.
#[utoipa::path(
    get,
    path = "/presence",
    tag = "agents",
    params(PresenceQuery),
    responses(
        (status = 200, description = "Online agents", body = Presence),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<PresenceQuery>,
) -> Result<ApiJson<Presence>, ApiError> {
    op.require(Scope::Read)?;
    let tenant = tenant_of(&op, &q)?;
    state.store.get_tenant(tenant).await?;
    let agents = read(&state, tenant).await?;
    Ok(ApiJson(Presence { agents }))
}

/// Server-sent events: `presence` with `{"agents":[…]}` at once and after every change;
/// `unavailable` when presence or storage stops answering (the view is stale until the
/// next `presence`). Not under the API's request bound: only each read is bounded.
#[utoipa::path(
    get,
    path = "/presence/stream",
    tag = "agents",
    params(PresenceQuery),
    responses(
        (status = 200, description = "`text/event-stream`: `presence` events carrying `{\"agents\":[…]}` (as `GET /presence`), `unavailable` events, keep-alive comments", content_type = "text/event-stream", body = String),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<PresenceQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    op.require(Scope::Read)?;
    let tenant = tenant_of(&op, &q)?;
    let bound = state.config.serve.db.request_timeout;
    match tokio::time::timeout(bound, state.store.get_tenant(tenant)).await {
        Ok(found) => found?,
        Err(_) => {
            storage_timed_out("presence_stream", bound);
            return Err(ApiError::unavailable(
                "storage did not answer in time; retry later",
            ));
        }
    };
    let mut tick = tokio::time::interval_at(Instant::now() + REREAD, REREAD);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let watch = Watch {
        changes: Some(state.hub.presence().subscribe()),
        state,
        tenant,
        bound,
        tick,
        last: None,
        failing: false,
        started: false,
    };
    let events = futures_util::stream::unfold(watch, Watch::next);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// One operator's stream: what it last sent, and what wakes it.
struct Watch {
    state: AppState,
    tenant: TenantId,
    bound: Duration,
    changes: Option<broadcast::Receiver<PresenceChange>>,
    tick: tokio::time::Interval,
    /// The body of the last `presence` event; `None` after a failed read, so the next
    /// good one is sent whether or not it differs.
    last: Option<String>,
    /// The last read failed and that was sent.
    failing: bool,
    started: bool,
}

impl Watch {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Watch)> {
        loop {
            if self.started {
                tokio::select! {
                    _ = self.state.shutdown.cancelled() => return None,
                    _ = self.tick.tick() => {}
                    () = local_change(&mut self.changes, self.tenant) => {}
                }
            }
            self.started = true;
            let event = match tokio::time::timeout(self.bound, read(&self.state, self.tenant)).await
            {
                Ok(Ok(agents)) => {
                    let body = json!({ "agents": agents }).to_string();
                    if self.last.as_ref() == Some(&body) {
                        continue;
                    }
                    self.last = Some(body.clone());
                    self.failing = false;
                    Event::default().event("presence").data(body)
                }
                failed => {
                    if failed.is_err() {
                        storage_timed_out("presence_stream", self.bound);
                    }
                    // Reported once per outage; the next good read is sent in any case.
                    if self.failing {
                        continue;
                    }
                    self.failing = true;
                    self.last = None;
                    Event::default()
                        .event("unavailable")
                        .data(r#"{"message":"presence or storage is not answering; retrying"}"#)
                }
            };
            return Some((Ok(event), self));
        }
    }
}

/// Waits for a presence change in `tenant` made through this node.
async fn local_change(changes: &mut Option<broadcast::Receiver<PresenceChange>>, tenant: TenantId) {
    let Some(rx) = changes.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(change) if tenant_of_change(&change) != tenant => {}
            // A change of ours, or missed ones: re-read either way.
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => {
                *changes = None;
                return std::future::pending().await;
            }
        }
    }
}

fn tenant_of_change(change: &PresenceChange) -> TenantId {
    match change {
        PresenceChange::Online { tenant_id, .. }
        | PresenceChange::Offline { tenant_id, .. }
        | PresenceChange::Status { tenant_id, .. } => *tenant_id,
    }
}
