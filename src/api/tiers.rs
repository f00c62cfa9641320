//! `GET /api/tiers`: the tenant tiers this node enforces (`--tiers`), with their limits.

use axum::extract::State;
use serde::Serialize;

use crate::auth::Operator;
use crate::config::Tier;
use crate::http::responses::OperatorErrors;
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;
use crate::store::Scope;

#[derive(Serialize, utoipa::ToSchema)]
pub struct TierList {
    /// The tier a new tenant gets.
    default: String,
    /// By name.
    tiers: Vec<Tier>,
}

/// The configured tiers and their limits; a limit that is `null` is no limit.
#[utoipa::path(
    get,
    path = "/tiers",
    tag = "tenants",
    responses(
        (status = 200, description = "The tiers", body = TierList),
        OperatorErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
) -> Result<ApiJson<TierList>, ApiError> {
    op.require(Scope::Read)?;
    let tiers = &state.config.tiers;
    Ok(ApiJson(TierList {
        default: tiers.default_name().to_owned(),
        tiers: tiers.all().cloned().collect(),
    }))
}
