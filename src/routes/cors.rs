//! CORS for pages on other origins (`--cors-origins`). A request from a listed origin
//! goes through tower-http's CORS (preflights answered, the answer's headers added);
//! any other request never sees it, so it gets no CORS header at all, preflight or not.
//! A key travels in `Authorization`, which needs no credentials mode: credentials
//! (cookies) are never allowed.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::state::AppState;

/// How long a browser may reuse a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

struct Cors {
    origins: Vec<HeaderValue>,
    layer: CorsLayer,
}

/// `router` with CORS for `origins`; unchanged without any.
pub fn apply(router: Router<AppState>, origins: &[HeaderValue]) -> Router<AppState> {
    if origins.is_empty() {
        return router;
    }
    let request_id = HeaderName::from_static("x-request-id");
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            request_id.clone(),
        ])
        .expose_headers([request_id, header::RETRY_AFTER])
        .max_age(PREFLIGHT_MAX_AGE);
    let cors = Arc::new(Cors {
        origins: origins.to_vec(),
        layer,
    });
    router.layer(middleware::from_fn_with_state(cors, listed_only))
}

async fn listed_only(State(cors): State<Arc<Cors>>, req: Request, next: Next) -> Response {
    let listed = req
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| cors.origins.contains(origin));
    if !listed {
        return next.run(req).await;
    }
    match cors.layer.layer(next).oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}
