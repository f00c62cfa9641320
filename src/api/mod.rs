//! The operator REST API under `/api` (Bearer operator key; `read` for GET, `write`
//! for POST). A tenant-bound key sees only its tenant: anything else is 404.

mod agents;
mod audit;
mod events;
mod job_changes;
mod jobs;
mod keys;
mod mirror;
mod mirror_changes;
mod page;
mod sources;
mod tenant_agents;
mod tenants;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};

use crate::admin::AdminError;
use crate::http::ApiError;
use crate::state::AppState;

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::Invalid(msg) => ApiError::bad_request(msg),
            AdminError::Field { field, message } => ApiError::invalid_fields([(field, message)]),
            AdminError::Conflict(msg) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            AdminError::Store(e) => e.into(),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tenants", get(tenants::list).post(tenants::create))
        .route(
            "/tenants/{id}",
            get(tenants::show)
                .patch(tenants::update)
                .delete(tenants::delete),
        )
        .route("/tenants/{id}/suspend", post(tenants::suspend))
        .route("/tenants/{id}/resume", post(tenants::resume))
        .route(
            "/tenants/{id}/agents",
            get(tenant_agents::list).post(tenant_agents::create),
        )
        .route(
            "/agents/{id}",
            get(tenant_agents::show).patch(tenant_agents::update),
        )
        .route("/agents/{id}/disable", post(tenant_agents::disable))
        .route("/agents/{id}/enable", post(tenant_agents::enable))
        .route(
            "/agents/{id}/rotate-secret",
            post(tenant_agents::rotate_secret),
        )
        .route(
            "/tenants/{id}/sources",
            get(sources::list).post(sources::create),
        )
        .route("/sources/{id}", get(sources::show).delete(sources::delete))
        .route("/sources/{id}/rotate", post(sources::rotate))
        .route("/audit", get(audit::list))
        .route("/agents/{id}/events", post(events::emit_to_agent))
        .route("/agents/{id}/inbox", get(events::inbox))
        .route("/agents/{id}/revoke-tokens", post(agents::revoke_tokens))
        .route("/tenants/{id}/events", post(events::emit_to_tenant))
        .route("/tenants/{id}/agents/online", get(events::online))
        .route(
            "/tenants/{id}/mappings",
            get(mirror::list_mappings).post(mirror::add_mapping),
        )
        .route(
            "/tenants/{id}/mappings/{mapping}",
            delete(mirror::remove_mapping).patch(mirror_changes::update_mapping),
        )
        .route(
            "/tenants/{id}/aliases",
            get(mirror::list_aliases).post(mirror::add_alias),
        )
        .route(
            "/tenants/{id}/aliases/{alias}",
            delete(mirror::remove_alias).patch(mirror_changes::update_alias),
        )
        .route(
            "/tenants/{id}/identities",
            get(mirror::list_identities).post(mirror::add_identity),
        )
        .route(
            "/tenants/{id}/identities/{provider}/{user}",
            delete(mirror::remove_identity).patch(mirror_changes::update_identity),
        )
        .route("/tenants/{id}/channels", get(mirror::list_channels))
        .route("/jobs", get(jobs::list))
        .route("/jobs/replay", post(jobs::replay_many))
        .route(
            "/jobs/{id}",
            get(jobs::show)
                .delete(jobs::delete)
                .patch(job_changes::update),
        )
        .route("/jobs/{id}/replay", post(jobs::replay_one))
        .route("/queue/stats", get(jobs::stats))
        .route("/operator-keys", get(keys::list).post(keys::create))
        .route("/operator-keys/{id}", delete(keys::revoke))
}
