//! `GET /api/usage`: a tenant's tokens and their cost per UTC day, model or agent,
//! priced by the node's price table (`--prices`) when asked.

use axum::extract::State;
use chrono::DateTime;
use nexus_proto::{AgentId, TenantId};
use serde::Deserialize;

use crate::admin::usage::{self, UsageQuery, UsageReport};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiQuery};
use crate::state::AppState;
use crate::store::{Scope, UsageGroup};

/// Taken as text so that a bad value is a 400 naming its field.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// The tenant; required with a global key, and a tenant-bound key's own by default.
    #[param(value_type = Option<TenantId>)]
    tenant: Option<String>,
    /// Only this agent's sessions.
    #[param(value_type = Option<AgentId>)]
    agent: Option<String>,
    /// Sessions started at or after this (RFC 3339); default 30 days before `to`.
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// Sessions started before this (RFC 3339); default now.
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
    /// `day` (default), `model` or `agent`.
    #[param(value_type = Option<UsageGroup>)]
    group_by: Option<String>,
}

fn field<T>(
    name: &'static str,
    text: Option<&str>,
    parse: impl FnOnce(&str) -> Option<T>,
    why: &str,
) -> Result<Option<T>, ApiError> {
    text.map(|t| parse(t).ok_or_else(|| ApiError::invalid_fields([(name, why.to_owned())])))
        .transpose()
}

fn instant(t: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Token sums and cost. Cost is computed from the price table now, per model (exact
/// name, else the longest configured prefix); a model without a price costs 0 and is
/// named in `unpriced_models`.
#[utoipa::path(
    get,
    path = "/usage",
    tag = "usage",
    params(UsageParams),
    responses(
        (status = 200, description = "Usage and cost per group", body = UsageReport),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<UsageParams>,
) -> Result<ApiJson<UsageReport>, ApiError> {
    op.require(Scope::Read)?;
    let asked = field(
        "tenant",
        q.tenant.as_deref(),
        |t| t.parse::<TenantId>().ok(),
        "is not a tenant id",
    )?;
    let tenant = asked.or(op.0.tenant_id).ok_or_else(|| {
        ApiError::invalid_fields([(
            "tenant",
            "is required with a key not bound to a tenant".to_owned(),
        )])
    })?;
    op.tenant(tenant)?;
    let query = UsageQuery {
        tenant,
        agent: field(
            "agent",
            q.agent.as_deref(),
            |a| a.parse::<AgentId>().ok(),
            "is not an agent id",
        )?,
        from: field(
            "from",
            q.from.as_deref(),
            instant,
            "is not an RFC 3339 time",
        )?,
        to: field("to", q.to.as_deref(), instant, "is not an RFC 3339 time")?,
        group_by: field(
            "group_by",
            q.group_by.as_deref(),
            |g| g.parse().ok(),
            "must be day, model or agent",
        )?
        .unwrap_or(UsageGroup::Day),
    };
    let now = state.clock.now_ms();
    let report = usage::usage(&state.store, &state.config.prices, &query, now).await?;
    Ok(ApiJson(report))
}
