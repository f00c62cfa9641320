//! `/api/agents/{id}/…`: operator actions on one agent (`admin` scope).

use axum::extract::State;

use crate::admin::{self, Actor, RevokedTokens};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath};
use crate::state::AppState;
use crate::store::Scope;
use nexus_proto::AgentId;

use super::events::visible_agent;

/// Refuses the agent's tokens issued until now (`admin`): its sessions on this node
/// close with 4001 at once, on other nodes within `--reconcile-interval`.
#[utoipa::path(
    post,
    path = "/agents/{id}/revoke-tokens",
    tag = "agents",
    params(("id" = AgentId, Path, description = "The agent")),
    responses(
        (status = 200, description = "Tokens issued until now are refused", body = RevokedTokens),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn revoke_tokens(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<ApiJson<RevokedTokens>, ApiError> {
    op.require(Scope::Admin)?;
    let agent = visible_agent(&state, &op, id).await?;
    let revoked = admin::revoke_tokens(&state.store, &Actor::key(&op.0), agent.id).await?;
    state
        .hub
        .sessions()
        .close_if_revoked(agent.id, revoked.tokens_valid_after);
    Ok(ApiJson(revoked))
}
