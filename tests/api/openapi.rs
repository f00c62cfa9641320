//! The OpenAPI document at `/api/openapi.json` and the reference page at `/api/docs`:
//! every route is in the document with exactly its methods, the document is whole, and
//! the page and its assets come from the node itself.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use nexus::state::AppState;
use reqwest::{Method, StatusCode, header};
use serde_json::Value;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};

both_profiles!(
    every_route_is_in_the_document_with_its_methods,
    the_document_is_public_and_whole,
    errors_are_the_documented_envelope,
    the_reference_page_and_its_assets_come_from_the_node,
);

/// Routes kept out of the document on purpose: they speak their own protocols (the
/// agent socket, provider webhooks, Prometheus) or are pages (the document, its
/// reference page, the dashboard).
const UNDOCUMENTED: &[&str] = &[
    "/agents",
    "/metrics",
    "/webhooks/",
    "/api/openapi.json",
    "/api/docs",
    "/dashboard",
];

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The path of every route of `router`. Axum lists its routes nowhere but in `Debug`
/// (`Router { path_router: … "paths": {RouteId(3): "/api/jobs", …} …, fallback_router:
/// …`); an axum that prints them otherwise makes the count check below fail rather
/// than pass on nothing.
fn router_paths(router: &Router<AppState>) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let (routes, _fallbacks) = debug
        .split_once("fallback_router")
        .expect("axum's Router Debug names its fallback router");
    let mut paths = BTreeSet::new();
    let mut rest = routes;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at..];
        let Some(close) = rest.find(')') else { break };
        rest = &rest[close + 1..];
        if let Some(quoted) = rest.strip_prefix(": \"")
            && let Some(end) = quoted.find('"')
            && !quoted[..end].contains("__private__axum")
        {
            paths.insert(quoted[..end].to_owned());
        }
    }
    paths
}

/// The document's operations: path → methods.
fn operations(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .map(|(path, item)| {
            let methods = item.as_object().expect("path item").keys();
            (path.clone(), methods.map(|m| m.to_uppercase()).collect())
        })
        .collect()
}

/// A concrete path for a template: every `{param}` becomes a well-formed id.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                "0193a3c4-1b2c-7d3e-8f40-5a6b7c8d9e0f"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn document(app: &TestApp) -> Value {
    let resp = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK, "the document needs no key");
    resp.json().await.expect("json")
}

/// Every route the node serves is in the document, with the methods it answers and
/// no other; and everything the document lists is served. Each (path, method) is
/// called without a key: a routed one answers anything but 405.
async fn every_route_is_in_the_document_with_its_methods(p: Profile) {
    let app = TestApp::spawn(p).await;
    let doc = document(&app).await;
    let documented = operations(&doc);
    // The same function builds the node's router.
    let routed = router_paths(&nexus::routes::routes(&app.state.config.serve));
    assert!(routed.len() > 25, "routes found: {routed:?}");

    for path in &routed {
        if UNDOCUMENTED.iter().any(|u| path.starts_with(u)) {
            continue;
        }
        let methods = documented.get(path).unwrap_or_else(|| {
            panic!(
                "{path} is routed but not in the OpenAPI document: register it with \
                 `routes!` and a `#[utoipa::path]` annotation (src/api/mod.rs)"
            )
        });
        for method in METHODS {
            let resp = app
                .http
                .request(method.clone(), app.url(&concrete(path)))
                .send()
                .await
                .expect("send");
            let answered = resp.status() != StatusCode::METHOD_NOT_ALLOWED;
            let listed = methods.contains(method.as_str());
            assert_eq!(
                answered,
                listed,
                "{method} {path} is {} but {} in the document",
                if answered { "served" } else { "not served" },
                if listed { "listed" } else { "not listed" },
            );
        }
    }
    for path in documented.keys() {
        assert!(routed.contains(path), "{path} is documented but not routed");
    }
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r);
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// OpenAPI 3.1 without a key, every reference resolving, every path parameter declared,
/// and the operator key required wherever it is needed.
async fn the_document_is_public_and_whole(p: Profile) {
    let app = TestApp::spawn(p).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["operator_key"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], serde_json::json!([{"operator_key": []}]));

    let mut found = Vec::new();
    refs(&doc, &mut found);
    for r in found {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} resolves to nothing");
    }

    for (path, item) in doc["paths"].as_object().expect("paths") {
        let params: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().expect("item") {
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, params, "{method} {path}: path parameters");
            let public = op.get("security") == Some(&serde_json::json!([{}]))
                || op["security"]
                    .as_array()
                    .is_some_and(|s| s.contains(&serde_json::json!({})));
            if path.starts_with("/api/") {
                assert!(!public, "{method} {path} must require the operator key");
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path}: 401 undocumented"
                );
            } else {
                assert!(public, "{method} {path} is public");
            }
        }
    }
    for public in ["/auth/token", "/health", "/ready"] {
        assert!(doc["paths"][public].is_object(), "{public} is documented");
    }
}

/// What the document says an error looks like is what the node sends.
async fn errors_are_the_documented_envelope(p: Profile) {
    let app = TestApp::spawn(p).await;
    let key = app.operator_key("read", None).await;
    let answers = [
        app.http.get(app.url("/api/jobs")).send().await,
        app.http
            .get(app.url("/api/jobs/not-a-uuid"))
            .bearer_auth(&key)
            .send()
            .await,
        app.http
            .get(app.url(&concrete("/api/jobs/{id}")))
            .bearer_auth(&key)
            .send()
            .await,
        app.http
            .get(app.url("/api/operator-keys"))
            .bearer_auth(&key)
            .send()
            .await,
    ];
    let mut statuses = Vec::new();
    for resp in answers {
        let resp = resp.expect("send");
        statuses.push(resp.status().as_u16());
        let body = resp.text().await.expect("body");
        let parsed: Result<nexus::http::ErrorBody, _> = serde_json::from_str(&body);
        assert!(parsed.is_ok(), "not the documented envelope: {body}");
    }
    assert_eq!(statuses, [401, 400, 404, 403]);
}

/// The `src`/`href` attributes of an HTML page.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').expect("closing quote");
            out.push(rest[..end].to_owned());
        }
    }
    out
}

/// The page, its scripts, styles and icons are served by the node, with a policy that
/// lets the browser load nothing from anywhere else; the page loads this node's document.
async fn the_reference_page_and_its_assets_come_from_the_node(p: Profile) {
    let app = TestApp::spawn(p).await;
    let page = app
        .http
        .get(app.url("/api/docs"))
        .send()
        .await
        .expect("send");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.url().path(), "/api/docs/", "redirected to the page");
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(!csp.contains("http"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");

    let assets = links(&html);
    assert!(assets.len() >= 5, "{assets:?}");
    for asset in assets {
        assert!(
            !asset.contains("//") && !asset.starts_with('/'),
            "{asset} is not one of the page's own assets"
        );
        let url = app.url(&format!("/api/docs/{}", asset.trim_start_matches("./")));
        let resp = app.http.get(&url).send().await.expect("send");
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        assert!(!resp.bytes().await.expect("body").is_empty(), "{url}");
    }

    let init = app
        .http
        .get(app.url("/api/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("js");
    assert!(init.contains("\"url\": \"/api/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");
    assert!(
        !init.contains("http://") && !init.contains("https://"),
        "{init}"
    );
}
