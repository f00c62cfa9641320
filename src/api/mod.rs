//! The operator REST API under `/api` (Bearer operator key; `read` for GET, `write`
//! for POST). A tenant-bound key sees only its tenant: anything else is 404.

mod activity;
mod agents;
mod events;
mod jobs;
mod keys;
mod mirror;
mod presence;
mod tenant_list;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::admin::AdminError;
use crate::http::ApiError;
use crate::state::AppState;

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::Invalid(msg) => ApiError::bad_request(msg),
            AdminError::Store(e) => e.into(),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
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
            delete(mirror::remove_mapping),
        )
        .route(
            "/tenants/{id}/aliases",
            get(mirror::list_aliases).post(mirror::add_alias),
        )
        .route(
            "/tenants/{id}/aliases/{alias}",
            delete(mirror::remove_alias),
        )
        .route(
            "/tenants/{id}/identities",
            get(mirror::list_identities).post(mirror::add_identity),
        )
        .route(
            "/tenants/{id}/identities/{provider}/{user}",
            delete(mirror::remove_identity),
        )
        .route("/tenants/{id}/channels", get(mirror::list_channels))
        .route("/jobs", get(jobs::list))
        .route("/jobs/replay", post(jobs::replay_many))
        .route("/jobs/{id}", get(jobs::show).delete(jobs::delete))
        .route("/jobs/{id}/replay", post(jobs::replay_one))
        .route("/queue/stats", get(jobs::stats))
        .route("/presence", get(presence::list))
        .route("/tenants", get(tenant_list::list))
        .route("/tenants/{id}/activity", get(activity::activity))
        .route("/operator-keys", get(keys::list).post(keys::create))
        .route("/operator-keys/{id}", delete(keys::revoke))
}

/// Routes that answer for as long as the client listens: outside the API's request
/// bound (each of their reads is bounded instead).
pub fn streams() -> Router<AppState> {
    Router::new().route("/presence/stream", get(presence::stream))
}
