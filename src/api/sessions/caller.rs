//! Who calls the sessions endpoints: an agent with its access token (its own sessions
//! only) or an operator key (naming the agent; a tenant-bound key within its tenant).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use nexus_proto::{AgentId, TenantId};

use crate::auth::{Authenticator, Operator, OperatorKeys};
use crate::http::ApiError;
use crate::state::AppState;
use crate::store::{AgentStatus, Scope, StoreError, TenantStatus};

pub enum Caller {
    Agent { agent: AgentId, tenant: TenantId },
    Operator(Operator),
}

impl Caller {
    /// The tenant whose sessions this caller may see (`None`: every tenant).
    pub fn within(&self) -> Option<TenantId> {
        match self {
            Caller::Agent { tenant, .. } => Some(*tenant),
            Caller::Operator(op) => op.0.tenant_id,
        }
    }

    /// The agent this caller is limited to, if it is one.
    pub fn agent(&self) -> Option<AgentId> {
        match self {
            Caller::Agent { agent, .. } => Some(*agent),
            Caller::Operator(_) => None,
        }
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match self {
            Caller::Agent { .. } => Ok(()),
            Caller::Operator(op) => op.require(scope),
        }
    }
}

/// Operator keys have a prefix (`nxk_`); anything else is taken for an access token.
const OPERATOR_KEY_PREFIX: &str = "nxk_";

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "an agent's access token or an operator key is required (Authorization: Bearer …)",
                )
            })?;
        if token.starts_with(OPERATOR_KEY_PREFIX) {
            let keys = Arc::<OperatorKeys>::from_ref(state);
            let found = keys.find(token).await?;
            return found
                .map(|k| Caller::Operator(Operator(k)))
                .ok_or_else(|| ApiError::unauthorized("unknown or revoked operator key"));
        }
        agent(state, token).await
    }
}

/// An agent's token: valid, not revoked, its agent active and its tenant not suspended.
async fn agent(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let auth = Arc::<Authenticator>::from_ref(state);
    let claims = auth
        .keys()
        .verify(token)
        .map_err(|_| ApiError::unauthorized("the access token is invalid or expired"))?;
    let (agent, _, tenant, _) = match state.store.agent_with_cursor(claims.sub).await {
        Ok(found) => found,
        Err(StoreError::NotFound(_)) => return Err(ApiError::unauthorized("unknown agent")),
        Err(e) => return Err(e.into()),
    };
    if agent.status != AgentStatus::Active
        || agent.tenant_id != claims.tenant_id
        || !agent.accepts_token_issued_at(claims.issued_at_ms())
    {
        return Err(ApiError::unauthorized(
            "the agent is disabled or the token was revoked",
        ));
    }
    if tenant == TenantStatus::Suspended {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tenant_suspended",
            "this agent's tenant is suspended",
        ));
    }
    Ok(Caller::Agent {
        agent: agent.id,
        tenant: agent.tenant_id,
    })
}
