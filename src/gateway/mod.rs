//! `GET /agents`: authenticate, negotiate, upgrade — then hand the socket to a session.
//!
//! Everything that can refuse a connection happens before the upgrade, so a bad token
//! is a plain HTTP 401 with the error envelope, never a socket that opens and dies.

mod session;

use std::sync::Arc;

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use nexus_proto::{PROTOCOL_V1, Seq};
use serde::Deserialize;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{JwtKeys, TokenError};
use crate::bus::Hub;
use crate::config::{Tiers, WsOpts};
use crate::http::ApiError;
use crate::store::{AgentStatus, Store, StoreError, TenantStatus};
use crate::telemetry::catalog;
use crate::tools::Tools;

pub use session::SessionInit;

/// What the gateway and its sessions reach: the hub is the sessions' one counterpart
/// for the inbox, acks and presence.
pub struct Gateway {
    pub hub: Arc<Hub>,
    pub store: Store,
    pub keys: JwtKeys,
    pub ws: WsOpts,
    pub tools: Arc<Tools>,
    /// Tenant tiers: a socket over its tier's limit is closed with 4029.
    pub tiers: Arc<Tiers>,
    /// Cancelled when the node starts shutting down: sessions close with 1012.
    pub shutdown: CancellationToken,
    /// Agent sessions, so shutdown can wait for them to say goodbye.
    pub sessions: TaskTracker,
}

/// No `Debug`: it holds the access token.
#[derive(Default, Deserialize)]
struct ConnectParams {
    token: Option<String>,
    v: Option<String>,
    after_seq: Option<String>,
}

pub async fn agents_ws(
    State(gw): State<Arc<Gateway>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let params: ConnectParams = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("malformed query: {e}")))?;
    // The agent sends nothing after its upgrade request: the handshake is this check
    // and the answer, and a database too slow for it must not pile upgrades up.
    let patience = gw.ws.handshake_timeout;
    let authorized = tokio::time::timeout(patience, authorize(&gw, &params, &headers))
        .await
        .unwrap_or_else(|_| {
            metrics::counter!(catalog::HTTP_TIMEOUTS, "phase" => "ws_handshake").increment(1);
            Err(ApiError::unavailable(format!(
                "the connection could not be authorized within {}; retry later",
                humantime::format_duration(patience)
            )))
        });
    let init = match authorized {
        Ok(init) => init,
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED {
                let labels = [("endpoint", "agents"), ("reason", e.code)];
                metrics::counter!(catalog::AUTH_FAILURES, &labels).increment(1);
            }
            return Err(e);
        }
    };
    let upgrade = upgrade.map_err(|_| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            "GET /agents must be a WebSocket upgrade",
        )
    })?;
    let ws = &gw.ws;
    let upgrade = upgrade
        .protocols([PROTOCOL_V1])
        .read_buffer_size(ws.read_buffer_bytes)
        // Frames are written straight through: no write buffer kept per idle socket.
        .write_buffer_size(0)
        .max_message_size(ws.max_message_bytes)
        // Frames a little over the message limit are still read whole (then refused with
        // 1009), so no unread bytes turn the close into a connection reset.
        .max_frame_size(ws.max_message_bytes.saturating_mul(16));
    let tracker = gw.sessions.clone();
    // Boxed: axum keeps the callback in the socket's task for its whole life.
    let init = Box::new(init);
    Ok(upgrade
        .on_upgrade(move |socket| tracker.track_future(session::run(Box::new(socket), gw, init))))
}

async fn authorize(
    gw: &Gateway,
    params: &ConnectParams,
    headers: &HeaderMap,
) -> Result<SessionInit, ApiError> {
    let token = bearer(headers).or(params.token.as_deref()).ok_or_else(|| {
        ApiError::unauthorized("an access token is required (Authorization: Bearer, or ?token=)")
    })?;
    let claims = gw.keys.verify(token).map_err(|e| match e {
        TokenError::Expired => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_expired",
            "the access token has expired",
        ),
        TokenError::Invalid => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is invalid",
        ),
    })?;
    negotiate(params, headers)?;
    let after_seq = params
        .after_seq
        .as_deref()
        .or_else(|| headers.get("nexus-after-seq").and_then(|v| v.to_str().ok()))
        .map(|s| s.trim().parse::<Seq>())
        .transpose()
        .map_err(|_| ApiError::bad_request("after_seq must be a non-negative integer"))?;
    let (agent, cursor, tenant, tier) = match gw.store.agent_with_cursor(claims.sub).await {
        Ok(found) => found,
        Err(StoreError::NotFound(_)) => return Err(ApiError::unauthorized("unknown agent")),
        Err(e) => return Err(e.into()),
    };
    if agent.status != AgentStatus::Active || agent.tenant_id != claims.tenant_id {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "agent_disabled",
            "this agent is disabled",
        ));
    }
    if tenant == TenantStatus::Suspended {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tenant_suspended",
            "this agent's tenant is suspended",
        ));
    }
    if !agent.accepts_token_issued_at(claims.issued_at_ms()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_revoked",
            "the access token was revoked; get a new one",
        ));
    }
    Ok(SessionInit {
        agent: agent.id,
        tenant: agent.tenant_id,
        token_exp: claims.exp,
        token_issued_ms: claims.issued_at_ms(),
        after_seq,
        cursor,
        socket_cap: gw.tiers.get(&tier).sockets,
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `nexus.v1` by subprotocol or `?v=1`; no preference means v1.
fn negotiate(params: &ConnectParams, headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = |asked: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_protocol",
            format!("protocol {asked:?} is not supported; supported: {PROTOCOL_V1} (or ?v=1)"),
        )
    };
    if let Some(v) = params.v.as_deref()
        && v != "1"
    {
        return Err(unsupported(v));
    }
    if let Some(offered) = headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
        let offered = offered.to_str().unwrap_or_default();
        if !offered.split(',').any(|p| p.trim() == PROTOCOL_V1) {
            return Err(unsupported(offered));
        }
    }
    Ok(())
}
