//! The router: every endpoint, the layers around them, probes and metrics. It sits
//! above the handlers (which know only `http`'s envelope and extractors below them).
//!
//! The endpoints callers use (`/api/*`, `/auth/token`, `/health`, `/ready`) are
//! registered with their OpenAPI entries from one annotation each (see [`crate::api`]);
//! [`documented`] gives the router and the document together. Agents' socket, webhooks
//! and metrics are for programs that bring their own contract, and stay out of it.

use std::any::Any;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::ServeOpts;
use crate::http::{self, ApiError, ErrorBody};
use crate::state::AppState;
use crate::{api, auth, dashboard, gateway, webhooks};

mod cors;

/// Token requests are a few hundred bytes; refuse anything much larger before parsing.
const TOKEN_BODY_LIMIT: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    routes(&state.config.serve).with_state(state)
}

/// Every route, before the state is given (tests enumerate it).
pub fn routes(opts: &ServeOpts) -> Router<AppState> {
    let (documented, doc) = documented(opts);
    let router = documented
        .route("/metrics", get(metrics))
        .route("/agents", get(gateway::agents_ws))
        .nest("/webhooks", webhooks::router())
        .merge(api::doc::reference(doc))
        .merge(dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(opts.max_body_bytes));
    cors::apply(router, &opts.http.cors_origins).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(request_span))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(catch_panics()),
    )
}

/// The routes in the OpenAPI document, and the document, from the same annotations.
pub fn documented(opts: &ServeOpts) -> (Router<AppState>, OpenApi) {
    let bound = opts.db.request_timeout;
    let api = api::router()
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                http::answer_within(bound, req, next)
            },
        ))
        .merge(api::streams());
    let token = OpenApiRouter::new()
        .routes(routes!(auth::token_endpoint))
        .layer(DefaultBodyLimit::max(TOKEN_BODY_LIMIT));
    OpenApiRouter::with_openapi(api::doc::frame())
        .routes(routes!(health))
        .routes(routes!(ready))
        .merge(token)
        .nest("/api", api)
        .split_for_parts()
}

/// Only the path is logged: query strings can carry tokens (`/agents?token=…`), and so
/// does a put.io callback's path (see [`logged_path`]).
fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        // The sender's value: an overlong one is not copied into every log line.
        .filter(|id| id.len() <= 128)
        .unwrap_or("-");
    // The same id, as the trace id it becomes on jobs and events (no dashes).
    let trace_id = request_id.replace('-', "");
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %logged_path(req.uri().path()),
        request_id,
        trace_id,
    )
}

/// The path as logged: a put.io callback's token (its only credential) is masked.
fn logged_path(path: &str) -> &str {
    match path.strip_prefix(PUTIO_CALLBACKS) {
        Some(_) => "/webhooks/putio/***",
        None => path,
    }
}

const PUTIO_CALLBACKS: &str = "/webhooks/putio/";

/// A handler that panics answers 500 in the envelope (inside the request's span and
/// with its id), not a dropped connection, and is counted.
fn catch_panics() -> CatchPanicLayer<fn(Box<dyn Any + Send>) -> Response> {
    CatchPanicLayer::custom(panic_response)
}

fn panic_response(panic: Box<dyn Any + Send>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("-");
    tracing::error!(panic = message, "handler panicked");
    metrics::counter!(crate::telemetry::catalog::HTTP_PANICS).increment(1);
    ApiError::internal().into_response()
}

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok`.
    status: &'static str,
}

/// 200 while the process is alive.
#[utoipa::path(get, path = "/health", tag = "node", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
async fn health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[derive(Serialize, utoipa::ToSchema)]
struct Ready {
    /// `ready`.
    status: &'static str,
    node_id: String,
}

/// 200 once the database answers, every migration is applied and (cluster) Redis
/// answers; 503 naming what is not ready otherwise.
#[utoipa::path(get, path = "/ready", tag = "node", security(()),
    responses(
        (status = 200, description = "Ready to serve", body = Ready),
        (status = 503, description = "What is not ready (`not_ready`)", body = ErrorBody),
    ))]
async fn ready(State(state): State<AppState>) -> Result<axum::Json<Ready>, ApiError> {
    let not_ready = |msg: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", msg);
    let database = async {
        state.store.ping().await?;
        state.store.pending_migrations().await
    };
    match tokio::time::timeout(READY_PATIENCE, database).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => {
            return Err(not_ready(format!(
                "{n} database migration(s) not applied; run `nexus migrate`"
            )));
        }
        Ok(Err(e)) => return Err(not_ready(format!("database unavailable: {e}"))),
        Err(_) => return Err(not_ready("database did not answer in time".into())),
    }
    match tokio::time::timeout(READY_PATIENCE, state.hub.presence().ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(not_ready(format!("redis unavailable: {e}"))),
        Err(_) => return Err(not_ready("redis did not answer in time".into())),
    }
    Ok(axum::Json(Ready {
        status: "ready",
        node_id: state.node_id.clone(),
    }))
}

/// Under 2 s: a probe sent as the database goes away is answered 503 within 2 s.
const READY_PATIENCE: Duration = Duration::from_millis(1500);

async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.run_upkeep();
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use serde_json::json;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("boom")
    }

    #[test]
    fn a_putio_token_is_not_logged() {
        assert_eq!(logged_path("/webhooks/putio/s3cr3t"), "/webhooks/putio/***");
        assert_eq!(logged_path("/webhooks/ingest/abc"), "/webhooks/ingest/abc");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_envelope_and_is_counted() {
        let metrics = crate::telemetry::metrics_handle();
        let app: Router = Router::new()
            .route("/boom", get(boom))
            .layer(catch_panics());
        let req = Request::get("/boom").body(Body::empty()).expect("request");
        let resp = app.oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 1024)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body,
            json!({"error": {"code": "internal", "message": "internal error"}})
        );
        let text = metrics.render();
        let counted = text
            .lines()
            .find_map(|l| l.strip_prefix("nexus_http_panics_total "))
            .and_then(|n| n.trim().parse::<f64>().ok());
        assert!(counted.is_some_and(|n| n >= 1.0), "{text}");
    }
}
