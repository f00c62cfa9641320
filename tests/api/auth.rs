//! `POST /auth/token`: OAuth2 client credentials, as a standard client would call it.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::Value;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp, request_token};

both_profiles!(
    token_by_basic_form_and_json,
    claims_and_expiry_decode,
    bad_credentials_are_invalid_client,
    unsupported_grant_and_bad_requests,
    repeated_failures_are_throttled,
    a_strangers_failures_do_not_lock_out_the_right_secret,
    a_flood_of_client_ids_leaves_a_legitimate_client_served,
);

/// A client whose requests come from `ip` (any 127.x address is loopback on Linux).
fn client_at(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .expect("client")
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

async fn assert_token_ok(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    body["access_token"].as_str().expect("token").to_owned()
}

async fn token_by_basic_form_and_json(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let url = app.url("/auth/token");

    let by_basic = app
        .http
        .post(&url)
        .header("authorization", basic(&a.agent.client_id, &a.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_token_ok(by_basic).await;

    let by_form = app
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &a.agent.client_id),
            ("client_secret", &a.client_secret),
            ("scope", "anything"),
        ])
        .send()
        .await
        .expect("send");
    assert_token_ok(by_form).await;

    let by_json = app
        .http
        .post(&url)
        .json(&serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": a.agent.client_id,
            "client_secret": a.client_secret,
        }))
        .send()
        .await
        .expect("send");
    assert_token_ok(by_json).await;
}

async fn claims_and_expiry_decode(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let resp = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    let token = assert_token_ok(resp).await;

    // Decode independently of the server's own code.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = 0;
    let key = jsonwebtoken::DecodingKey::from_secret(b"integration-test-secret-0123456789abcdef");
    let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation)
        .expect("decodes")
        .claims;
    assert_eq!(claims["sub"], a.agent.id.to_string());
    assert_eq!(claims["tenant_id"], t.id.to_string());
    assert_eq!(claims["client_id"], a.agent.client_id);
    let (iat, exp) = (
        claims["iat"].as_i64().expect("iat"),
        claims["exp"].as_i64().expect("exp"),
    );
    assert_eq!(exp - iat, 3600);
    let now = chrono::Utc::now().timestamp();
    assert!((iat - now).abs() <= 5, "iat {iat} is now ({now})");
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().expect("jti")).is_ok());
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
}

async fn expect_invalid_client(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
}

async fn bad_credentials_are_invalid_client(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let wrong_secret = app.token_response(&a.agent.client_id, "nxs_wrong").await;
    expect_invalid_client(wrong_secret).await;

    let unknown = app.token_response("nxc_nobody", &a.client_secret).await;
    expect_invalid_client(unknown).await;

    let no_credentials = app
        .http
        .post(app.url("/auth/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    expect_invalid_client(no_credentials).await;

    nexus::admin::set_agent_status(
        &app.state.store,
        &nexus::admin::Actor::Cli,
        a.agent.id,
        nexus::store::AgentStatus::Disabled,
    )
    .await
    .expect("disable");
    let disabled = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    expect_invalid_client(disabled).await;
}

async fn unsupported_grant_and_bad_requests(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let url = app.url("/auth/token");

    let password_grant = app
        .http
        .post(&url)
        .header("authorization", basic(&a.agent.client_id, &a.client_secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .expect("send");
    assert_eq!(password_grant.status(), StatusCode::BAD_REQUEST);
    let body: Value = password_grant.json().await.expect("json");
    assert_eq!(body["error"], "unsupported_grant_type");

    let missing_grant = app
        .http
        .post(&url)
        .header("authorization", basic(&a.agent.client_id, &a.client_secret))
        .form(&[("scope", "x")])
        .send()
        .await
        .expect("send");
    assert_eq!(missing_grant.status(), StatusCode::BAD_REQUEST);
    let body: Value = missing_grant.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");

    let both_methods = app
        .http
        .post(&url)
        .header("authorization", basic(&a.agent.client_id, &a.client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", a.agent.client_id.as_str()),
            ("client_secret", a.client_secret.as_str()),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(both_methods.status(), StatusCode::BAD_REQUEST);

    let malformed_json = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(malformed_json.status(), StatusCode::BAD_REQUEST);
    let body: Value = malformed_json.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");
}

async fn repeated_failures_are_throttled(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    for _ in 0..5 {
        let r = app.token_response(&a.agent.client_id, "nxs_wrong").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even the right secret is refused until the window passes.
    let throttled = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after));

    // Another client is unaffected.
    let b = app.agent(t.id, "other").await;
    let ok = app
        .token_response(&b.agent.client_id, &b.client_secret)
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

async fn a_strangers_failures_do_not_lock_out_the_right_secret(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let addr = app.addr.to_string();
    let stranger = client_at([127, 0, 0, 2]);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = request_token(&stranger, &addr, &a.agent.client_id, "nxs_guess").await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    // The agent itself, from its own address, is not locked out.
    let agent = client_at([127, 0, 0, 3]);
    let ok = request_token(&agent, &addr, &a.agent.client_id, &a.client_secret).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

async fn a_flood_of_client_ids_leaves_a_legitimate_client_served(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let addr = app.addr.to_string();
    let attacker = client_at([127, 0, 0, 4]);
    let before = app.state.auth.verifications();
    // Unknown ids, each sent twice: no argon2, and the repeat is not even a query.
    let mut statuses = Vec::new();
    for i in 0..40 {
        for _ in 0..2 {
            let id = format!("nxc_unknown_{i}");
            let r = request_token(&attacker, &addr, &id, "nxs_guess").await;
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(
        app.state.auth.verifications(),
        before,
        "unknown client ids cost no argon2"
    );
    // 50 failures from one address, whatever the ids: then the address is refused.
    assert!(statuses[..50].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[50..].iter().all(|s| *s == 429), "{statuses:?}");
    let refused = request_token(&attacker, &addr, &a.agent.client_id, &a.client_secret).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);

    let agent = client_at([127, 0, 0, 5]);
    let ok = request_token(&agent, &addr, &a.agent.client_id, &a.client_secret).await;
    assert_eq!(ok.status(), StatusCode::OK, "another address is served");
    assert_eq!(app.state.auth.verifications(), before + 1);
}
