//! CORS (`--cors-origins`): pages on the listed origins may call the API from a
//! browser; other origins, and every origin by default, get no CORS header at all.

use axum::http::HeaderValue;
use reqwest::{Method, StatusCode, header};

use crate::both_profiles;
use crate::cli::nexus;
use crate::helpers::{Profile, TestApp, TestDb};

both_profiles!(
    an_allowed_origin_gets_its_preflight_and_answers,
    another_origin_gets_no_cors_headers,
    no_cors_headers_by_default,
    a_bad_origin_is_refused_at_start,
);

const OPS: &str = "https://ops.example.com";

async fn with_origins(p: Profile, origins: &[&str]) -> TestApp {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .map(|o| nexus::config::cors_origin(o).expect("origin"))
        .collect();
    TestApp::spawn_with(p, move |c| c.serve.http.cors_origins = origins).await
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(Method::OPTIONS, app.url("/api/jobs"))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
        .send()
        .await
        .expect("send")
}

fn cors_headers(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

fn header_str(resp: &reqwest::Response, name: header::HeaderName) -> &str {
    resp.headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .expect("ascii")
}

async fn an_allowed_origin_gets_its_preflight_and_answers(p: Profile) {
    let app = with_origins(p, &[OPS, "http://localhost:5173"]).await;
    let resp = preflight(&app, OPS).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_str(&resp, header::ACCESS_CONTROL_ALLOW_ORIGIN), OPS);
    let methods = header_str(&resp, header::ACCESS_CONTROL_ALLOW_METHODS);
    for m in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = header_str(&resp, header::ACCESS_CONTROL_ALLOW_HEADERS);
    assert!(headers.contains("authorization"), "{headers}");
    assert!(headers.contains("content-type"), "{headers}");
    assert!(
        resp.headers()
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none(),
        "credentials are never allowed"
    );

    // The call itself: the page may read the answer and its request id.
    let key = app.operator_key("read", None).await;
    let resp = app
        .http
        .get(app.url("/api/queue/stats"))
        .header(header::ORIGIN, "http://localhost:5173")
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_str(&resp, header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "http://localhost:5173"
    );
    let exposed = header_str(&resp, header::ACCESS_CONTROL_EXPOSE_HEADERS);
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

async fn another_origin_gets_no_cors_headers(p: Profile) {
    let app = with_origins(p, &[OPS]).await;
    for origin in [
        "https://evil.example.com",
        "https://ops.example.com.evil.com",
    ] {
        let resp = preflight(&app, origin).await;
        assert_eq!(cors_headers(&resp), Vec::<String>::new(), "{origin}");
        let resp = app
            .http
            .get(app.url("/health"))
            .header(header::ORIGIN, origin)
            .send()
            .await
            .expect("send");
        assert_eq!(cors_headers(&resp), Vec::<String>::new(), "{origin}");
    }
}

async fn no_cors_headers_by_default(p: Profile) {
    let app = TestApp::spawn(p).await;
    let resp = preflight(&app, OPS).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(cors_headers(&resp), Vec::<String>::new());
    let resp = app
        .http
        .get(app.url("/api/jobs"))
        .header(header::ORIGIN, OPS)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cors_headers(&resp), Vec::<String>::new());
}

async fn a_bad_origin_is_refused_at_start(p: Profile) {
    use nexus::config::cors_origin;
    // Written as a browser sends `Origin`: lower case, without the default port.
    let same = |given: &str, sent: &str| {
        assert_eq!(cors_origin(given).expect(given), sent, "{given}");
    };
    same("https://ops.example.com", "https://ops.example.com");
    same(" HTTPS://Ops.Example.COM ", "https://ops.example.com");
    same("https://ops.example.com:443", "https://ops.example.com");
    same("http://localhost:5173", "http://localhost:5173");
    same("http://[::1]:8080", "http://[::1]:8080");
    for bad in [
        "*",
        "ops.example.com",
        "https://ops.example.com/",
        "https://ops.example.com/app",
        "ftp://ops.example.com",
        "https://",
        "https://user@ops.example.com",
        "https://ops.example.com:0",
        "https://ops.example.com:99999",
        "http://[::1",
        "null",
    ] {
        assert!(cors_origin(bad).is_err(), "{bad:?} was accepted");
    }

    let db = TestDb::new(p).await;
    let out = nexus(
        &db,
        &["serve", "--cors-origins", "https://ok.example.com,*"],
    );
    assert!(!out.status.success(), "the node started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--cors-origins"), "{stderr}");
    assert!(stderr.contains("'*' is not accepted"), "{stderr}");
}
