//! `/dashboard`: the operator dashboard, plain HTML, CSS and ES modules compiled into
//! the binary. The page reads the operator API with the key the operator signs in with
//! (kept in the tab's `sessionStorage`, sent only in the `Authorization` header).
//!
//! Assets are answered with `Cache-Control: no-cache` and an `ETag`, so a browser
//! revalidates them (a 304) and picks up a new node's assets at once, and with a
//! Content-Security-Policy that allows nothing but this origin.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::http::ApiError;

/// Scripts, styles, images and requests from this origin only; no framing, no plugins.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    etag: HeaderValue,
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        ($name, $type, include_str!(concat!("assets/", $name)))
    };
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    [
        asset!("index.html", "text/html; charset=utf-8"),
        asset!("style.css", "text/css; charset=utf-8"),
        asset!("app.js", "text/javascript; charset=utf-8"),
        asset!("api.js", "text/javascript; charset=utf-8"),
        asset!("agents.js", "text/javascript; charset=utf-8"),
        asset!("jobs.js", "text/javascript; charset=utf-8"),
        asset!("usage.js", "text/javascript; charset=utf-8"),
        asset!("audit.js", "text/javascript; charset=utf-8"),
        asset!("alerts.js", "text/javascript; charset=utf-8"),
        asset!("workers.js", "text/javascript; charset=utf-8"),
        asset!("dom.js", "text/javascript; charset=utf-8"),
        asset!("favicon.svg", "image/svg+xml"),
    ]
    .into_iter()
    .map(|(name, content_type, body)| Asset {
        name,
        content_type,
        body,
        etag: etag(body),
    })
    .collect()
});

fn etag(body: &str) -> HeaderValue {
    let digest = hex::encode(&Sha256::digest(body.as_bytes())[..12]);
    HeaderValue::from_str(&format!("\"{digest}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/dashboard", get(index))
        .route("/dashboard/", get(index))
        .route("/dashboard/{file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::not_found("dashboard file").into_response();
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag == asset.etag);
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, asset.etag.clone());
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}
