//! Webhook sources: `GET|POST /api/tenants/{id}/sources`, `GET|DELETE /api/sources/{id}`,
//! `POST /api/sources/{id}/rotate`. Sources are never shown with their secrets.

use axum::extract::State;
use axum::http::StatusCode;
use nexus_proto::{AgentId, EventType, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::page::PageQuery;
use crate::admin::{self, Actor, SourceSpec};
use crate::auth::Operator;
use crate::http::responses::{BadRequest, BodyErrors, Conflict, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::store::{Scope, Secret, Source, SourceKind};

/// The source, if this operator may see it (from the database: what was just changed).
async fn visible(state: &AppState, op: &Operator, id: Uuid) -> Result<Source, ApiError> {
    let source = state.store.get_source(id).await?;
    op.tenant(source.tenant_id)
        .map_err(|_| ApiError::not_found("source"))?;
    Ok(source)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SourcePage {
    sources: Vec<Source>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

/// The tenant's webhook sources, without their secrets, oldest first.
#[utoipa::path(
    get,
    path = "/tenants/{id}/sources",
    tag = "sources",
    params(("id" = TenantId, Path, description = "The tenant"), PageQuery),
    responses(
        (status = 200, description = "A page of sources", body = SourcePage),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<ApiJson<SourcePage>, ApiError> {
    op.require(Scope::Read)?;
    op.tenant(tenant)?;
    let page = q.page()?;
    state.store.get_tenant(tenant).await?;
    let mut sources = state
        .store
        .list_sources_page(tenant, page.after, page.fetch())
        .await?;
    let next = page.finish(&mut sources, |s| s.id);
    Ok(ApiJson(SourcePage {
        sources,
        next_cursor: next,
    }))
}

/// No `Debug`: it holds secrets.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewSourceBody {
    #[schema(value_type = SourceKind)]
    kind: String,
    /// Slack team id, ClickUp webhook id, or the ingest source's name; none for put.io.
    external_id: Option<String>,
    /// The signing secret (Slack, ClickUp) or the ingest source's bearer secret; none for
    /// put.io (its token is generated and answered once in `callback_path`).
    secret: Option<String>,
    /// The provider API token the node calls with (Slack, ClickUp).
    api_token: Option<String>,
    /// The Slack bot's own user id, whose messages are not mirrored.
    bot_user: Option<String>,
    /// Ingest, put.io: the agent the payloads go to (or `to_alias`).
    to_agent: Option<AgentId>,
    /// Ingest, put.io: the alias whose agents the payloads go to.
    to_alias: Option<String>,
    /// Ingest: the event type the payloads become (put.io: always `context_update`).
    #[schema(value_type = Option<EventType>)]
    event: Option<String>,
}

/// Adds a webhook source (`admin`); its secrets are never shown again. A put.io source's
/// answer carries its `callback_path` (with the token) this once.
#[utoipa::path(
    post,
    path = "/tenants/{id}/sources",
    tag = "sources",
    params(("id" = TenantId, Path, description = "The tenant")),
    request_body = NewSourceBody,
    responses(
        (status = 201, description = "The new source, without its secrets", body = Source),
        BadRequest, NotFound, Conflict, BodyErrors, OperatorErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(tenant): ApiPath<TenantId>,
    ApiJson(body): ApiJson<NewSourceBody>,
) -> Result<(StatusCode, ApiJson<Source>), ApiError> {
    op.require(Scope::Admin)?;
    op.tenant(tenant)?;
    let kind = match body.kind.as_str() {
        "slack" => SourceKind::Slack,
        "clickup" => SourceKind::Clickup,
        "ingest" => SourceKind::Ingest,
        "putio" => SourceKind::Putio,
        _ => {
            let why = "must be slack, clickup, ingest or putio".to_owned();
            return Err(ApiError::invalid_fields([("kind", why)]));
        }
    };
    let event = body
        .event
        .map(|e| e.parse::<EventType>())
        .transpose()
        .map_err(|_| ApiError::invalid_fields([("event", "is not an event type".to_owned())]))?;
    let spec = SourceSpec {
        tenant,
        kind,
        external_id: body.external_id,
        secret: body.secret,
        api_token: body.api_token,
        bot_user: body.bot_user,
        to_agent: body.to_agent,
        to_alias: body.to_alias,
        event,
    };
    let source = admin::add_source(&state.store, &Actor::key(&op.0), spec).await?;
    Ok((StatusCode::CREATED, ApiJson(source)))
}

#[utoipa::path(
    get,
    path = "/sources/{id}",
    tag = "sources",
    params(("id" = Uuid, Path, description = "The source")),
    responses(
        (status = 200, description = "The source, without its secrets", body = Source),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<ApiJson<Source>, ApiError> {
    op.require(Scope::Read)?;
    Ok(ApiJson(visible(&state, &op, id).await?))
}

/// Removes the source (`admin`): its webhooks are refused from then on.
#[utoipa::path(
    delete,
    path = "/sources/{id}",
    tag = "sources",
    params(("id" = Uuid, Path, description = "The source")),
    responses(
        (status = 204, description = "Removed"),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    op.require(Scope::Admin)?;
    visible(&state, &op, id).await?;
    admin::remove_source(&state.store, &Actor::key(&op.0), id).await?;
    state.ctx.forget_operator_changes();
    Ok(StatusCode::NO_CONTENT)
}

/// No `Debug`: it holds secrets.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RotateBody {
    /// A new signing secret.
    secret: Option<String>,
    /// A new provider API token.
    api_token: Option<String>,
    /// How long the replaced signing secret stays accepted, e.g. `1h`; default none.
    grace: Option<String>,
}

/// Replaces the source's secrets (`admin`); the old signing secret may stay accepted
/// for a grace period.
#[utoipa::path(
    post,
    path = "/sources/{id}/rotate",
    tag = "sources",
    params(("id" = Uuid, Path, description = "The source")),
    request_body = RotateBody,
    responses(
        (status = 200, description = "The source, without its secrets", body = Source),
        BadRequest, NotFound, BodyErrors, OperatorErrors,
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    op: Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RotateBody>,
) -> Result<ApiJson<Source>, ApiError> {
    op.require(Scope::Admin)?;
    visible(&state, &op, id).await?;
    let grace = match body.grace.as_deref() {
        None => std::time::Duration::ZERO,
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            ApiError::invalid_fields([("grace", format!("is not a duration like 1h: {e}"))])
        })?,
    };
    let rotated = admin::rotate_source(
        &state.store,
        &Actor::key(&op.0),
        id,
        body.secret.map(Secret::new),
        body.api_token.map(Secret::new),
        grace,
        state.clock.now_ms(),
    )
    .await?;
    // This node verifies with the new secret at once; others within `--cache-ttl`.
    state.ctx.forget_operator_changes();
    Ok(ApiJson(rotated))
}
