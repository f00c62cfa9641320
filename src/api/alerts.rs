//! `/api/alerts`: cost alerts per tenant or agent (list, add, remove) and the periods
//! they fired in. A tenant-bound key sees and manages its tenant's only.

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::{AgentId, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::page::{PageQuery, time_id, time_id_cursor};
use crate::admin::{self, Actor, AlertSpec, CreatedAlert};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, BodyErrors, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::{AlertPeriod, CostAlert, Firing, Scope};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantQuery {
    /// Only this tenant's (a tenant-bound key: its own, always).
    tenant: Option<TenantId>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

fn tenant_filter(op: &Operator, asked: Option<TenantId>) -> Result<Option<TenantId>, ApiError> {
    if let Some(t) = asked {
        op.tenant(t)?;
    }
    Ok(asked.or(op.0.tenant_id))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertList {
    alerts: Vec<CostAlert>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// The alerts this key sees, oldest first.
#[utoipa::path(
    get,
    path = "/alerts",
    tag = "alerts",
    params(TenantQuery, PageQuery),
    responses((status = 200, description = "The alerts", body = AlertList), BadRequest, NotFound, OperatorErrors)
)]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<TenantQuery>,
) -> Result<ApiJson<AlertList>, ApiError> {
    op.require(Scope::Read)?;
    let page = q.page.page()?;
    let tenant = tenant_filter(&op, q.tenant)?;
    let mut alerts = state
        .store
        .list_alerts_page(tenant, page.after, page.fetch())
        .await?;
    let next_cursor = page.finish(&mut alerts, |a| a.id);
    Ok(ApiJson(AlertList {
        alerts,
        next_cursor,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewAlertBody {
    tenant_id: TenantId,
    /// Only this agent's spend; leave out for the whole tenant's.
    agent_id: Option<AgentId>,
    period: AlertPeriod,
    /// Spend in USD (priced from the token usage of sessions started in the period).
    #[schema(exclusive_minimum = 0)]
    threshold_usd: f64,
    /// Receives a signed POST (`X-Nexus-Signature`) once per period.
    webhook_url: Option<String>,
    /// Gets a message through the tenant's Slack source, once per period.
    slack_channel: Option<String>,
}

/// Adds an alert (`admin`): 201 with its webhook's signing secret, shown once.
#[utoipa::path(
    post,
    path = "/alerts",
    tag = "alerts",
    request_body = NewAlertBody,
    responses((status = 201, description = "Added", body = CreatedAlert), BadRequest, NotFound, BodyErrors, OperatorErrors)
)]
pub async fn create(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(body): ApiJson<NewAlertBody>,
) -> Result<(StatusCode, ApiJson<CreatedAlert>), ApiError> {
    op.require(Scope::Admin)?;
    op.tenant(body.tenant_id)?;
    let spec = AlertSpec {
        tenant: body.tenant_id,
        agent: body.agent_id,
        period: body.period,
        threshold_usd: body.threshold_usd,
        webhook_url: body.webhook_url,
        slack_channel: body.slack_channel,
    };
    let created = admin::add_alert(&state.store, &Actor::key(&op.0), spec).await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// Removes an alert (`admin`).
#[utoipa::path(
    delete,
    path = "/alerts/{id}",
    tag = "alerts",
    params(("id" = Uuid, Path, description = "The alert")),
    responses((status = 204, description = "Removed"), BadRequest, NotFound, OperatorErrors)
)]
pub async fn remove(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    op.require(Scope::Admin)?;
    admin::remove_alert(&state.store, &Actor::key(&op.0), id, op.0.tenant_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FiringList {
    firings: Vec<Firing>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// The periods alerts fired in, newest first.
#[utoipa::path(
    get,
    path = "/alerts/firings",
    tag = "alerts",
    params(TenantQuery, PageQuery),
    responses((status = 200, description = "Firings", body = FiringList), BadRequest, NotFound, OperatorErrors)
)]
pub async fn firings(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<TenantQuery>,
) -> Result<ApiJson<FiringList>, ApiError> {
    op.require(Scope::Read)?;
    let page = q.page.page_by_text(time_id)?;
    let tenant = tenant_filter(&op, q.tenant)?;
    let mut firings = state
        .store
        .list_firings(tenant, page.after, page.fetch())
        .await?;
    let next_cursor = page.finish(&mut firings, |f| time_id_cursor(f.fired_at, f.alert_id));
    Ok(ApiJson(FiringList {
        firings,
        next_cursor,
    }))
}
