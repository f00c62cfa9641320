//! The operator REST API under `/api` (Bearer operator key; `read` for GET, `write`
//! for POST). A tenant-bound key sees only its tenant: anything else is 404.

mod events;
mod jobs;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/agents/{id}/events", post(events::emit_to_agent))
        .route("/agents/{id}/inbox", get(events::inbox))
        .route("/tenants/{id}/events", post(events::emit_to_tenant))
        .route("/tenants/{id}/agents/online", get(events::online))
        .route("/jobs", get(jobs::list))
        .route("/jobs/replay", post(jobs::replay_many))
        .route("/jobs/{id}", get(jobs::show).delete(jobs::delete))
        .route("/jobs/{id}/replay", post(jobs::replay_one))
        .route("/queue/stats", get(jobs::stats))
}
