//! The operator REST API under `/api` (Bearer operator key; `read` for GET, `write`
//! for POST). A tenant-bound key sees only its tenant: anything else is 404.
//!
//! # Adding an endpoint
//!
//! A route exists only with its OpenAPI entry: annotate the handler and register it
//! with [`routes!`] in [`router`], which reads the method and the path from the
//! annotation for both the router and the document (`GET /api/openapi.json`, shown at
//! `/api/docs`):
//!
//! ```text
//! #[utoipa::path(get, path = "/things/{id}", tag = "things",
//!     params(("id" = Uuid, Path, description = "The thing")),
//!     responses((status = 200, body = Thing), BadRequest, NotFound, OperatorErrors))]
//! pub async fn show(…) -> Result<ApiJson<Thing>, ApiError> { … }
//!
//! // in `router()`; handlers of one path go in one `routes!`:
//! .routes(routes!(things::show, things::delete))
//! ```
//!
//! The path is relative to `/api`; the Bearer key is required unless the annotation
//! says `security(())`. Response types derive `utoipa::ToSchema` (their schemas are
//! collected from the annotations); query structs derive `utoipa::IntoParams`; the
//! error answers are the envelope types of [`crate::http::responses`]. Without the
//! annotation `routes!` does not compile; a route added past it (`.route(…)`) fails
//! `tests/api/openapi.rs`, which compares every route of the node's router with the
//! document, method by method.

mod activity;
mod agents;
mod alerts;
mod audit;
mod batch;
pub mod doc;
mod events;
mod job_changes;
mod jobs;
mod keys;
mod mirror;
mod mirror_changes;
mod page;
mod presence;
mod pull;
mod sessions;
mod sources;
mod tenant_agents;
mod tenants;
mod tiers;
mod usage;
mod workers;

use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::AdminError;
use crate::http::ApiError;
use crate::state::AppState;

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::Invalid(msg) => ApiError::bad_request(msg),
            AdminError::Field { field, message } => ApiError::invalid_fields([(field, message)]),
            AdminError::Conflict(msg) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            AdminError::Quota(r) => r.into(),
            AdminError::Store(e) => e.into(),
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events::emit_to_agent))
        .routes(routes!(batch::emit_batch))
        .routes(routes!(events::inbox))
        .routes(routes!(agents::revoke_tokens))
        .routes(routes!(events::emit_to_tenant))
        .routes(routes!(events::online))
        .routes(routes!(events::online_peers))
        .routes(routes!(mirror::list_mappings, mirror::add_mapping))
        .routes(routes!(
            mirror::remove_mapping,
            mirror_changes::update_mapping
        ))
        .routes(routes!(mirror::list_aliases, mirror::add_alias))
        .routes(routes!(mirror::remove_alias, mirror_changes::update_alias))
        .routes(routes!(mirror::list_identities, mirror::add_identity))
        .routes(routes!(
            mirror::remove_identity,
            mirror_changes::update_identity
        ))
        .routes(routes!(mirror::list_channels))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::replay_many))
        .routes(routes!(jobs::show, jobs::delete, job_changes::update))
        .routes(routes!(jobs::replay_one))
        .routes(routes!(jobs::stats))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(presence::list))
        .routes(routes!(tenants::list, tenants::create))
        .routes(routes!(tenants::show, tenants::update, tenants::delete))
        .routes(routes!(tenants::suspend))
        .routes(routes!(tenants::resume))
        .routes(routes!(tenant_agents::list, tenant_agents::create))
        .routes(routes!(tenant_agents::show, tenant_agents::update))
        .routes(routes!(tenant_agents::disable))
        .routes(routes!(tenant_agents::enable))
        .routes(routes!(tenant_agents::rotate_secret))
        .routes(routes!(sources::list, sources::create))
        .routes(routes!(sources::show, sources::delete))
        .routes(routes!(sources::rotate))
        .routes(routes!(audit::list))
        .routes(routes!(tiers::list))
        .routes(routes!(alerts::list, alerts::create))
        .routes(routes!(alerts::remove))
        .routes(routes!(alerts::firings))
        .routes(routes!(activity::activity))
        .routes(routes!(usage::usage))
        .routes(routes!(workers::heartbeat))
        .routes(routes!(workers::list))
}

/// Routes that answer for as long as the client listens (or waits: agents' long polls),
/// or read large bodies: outside the API's request bound (each of their storage waits
/// is bounded instead).
pub fn streams() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(presence::stream))
        .routes(routes!(pull::inbox))
        .routes(routes!(pull::ack))
        .merge(sessions::router())
}
