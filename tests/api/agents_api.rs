//! The operator REST API for agents: create one or many, page through and filter,
//! change, disable (the live session closes with 4003) and enable, rotate the secret.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};
use crate::operator_api::{call, spawn_patient, walk};

both_profiles!(
    agents_are_created_paged_filtered_and_changed,
    a_disabled_agent_is_closed_and_refused_and_enabled_again,
);

async fn agents_are_created_paged_filtered_and_changed(p: Profile) {
    let app = spawn_patient(p).await;
    let admin = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await;
    let agents = format!("/api/tenants/{}/agents", t.id);
    let one = json!({"name": "alice", "clickup_user": 183});
    let (status, made) = call(&app, Method::POST, &agents, &admin, Some(one)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let alice = made["agents"][0].clone();
    assert!(
        alice["client_secret"]
            .as_str()
            .is_some_and(|s| s.len() > 20)
    );
    let many = json!({"count": 4, "name_prefix": "worker-"});
    let (status, made) = call(&app, Method::POST, &agents, &admin, Some(many)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["agents"].as_array().map(Vec::len), Some(4));
    assert!(
        made["agents"]
            .as_array()
            .expect("list")
            .iter()
            .all(|a| a["client_secret"].is_string())
    );

    let all = walk(&app, &agents, "agents", &admin, 2).await;
    assert_eq!(all.len(), 5);
    assert!(
        all.iter().all(|a| a.get("client_secret").is_none()),
        "secrets are shown once"
    );
    assert_eq!(
        walk(
            &app,
            &format!("{agents}?name=worker-"),
            "agents",
            &admin,
            50
        )
        .await
        .len(),
        4
    );

    let id = alice["id"].as_str().expect("id");
    let path = format!("/api/agents/{id}");
    let (_, shown) = call(&app, Method::GET, &path, &admin, None).await;
    assert_eq!(shown["clickup_user"], "183");
    let patch = json!({"name": "alice2", "slack_user": "U123ABC", "clickup_user": null});
    let (status, changed) = call(&app, Method::PATCH, &path, &admin, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let (_, shown) = call(&app, Method::GET, &path, &admin, None).await;
    assert_eq!(shown["name"], "alice2");
    assert_eq!(shown["slack_user"], "U123ABC");
    assert_eq!(shown["clickup_user"], Value::Null);

    // A rotated secret gets tokens; the old one does not.
    let client_id = alice["client_id"].as_str().expect("client id");
    let old = alice["client_secret"].as_str().expect("secret");
    let (status, rotated) = call(
        &app,
        Method::POST,
        &format!("{path}/rotate-secret"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["client_secret"].as_str().expect("new secret");
    assert_eq!(
        app.token_response(client_id, new).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.token_response(client_id, old).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn a_disabled_agent_is_closed_and_refused_and_enabled_again(p: Profile) {
    // A long reconcile: the API closes the session itself.
    let app = TestApp::spawn_with(p, |c| {
        c.serve.reconcile_interval = Duration::from_secs(3600)
    })
    .await;
    let admin = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await;
    let a = app.agent(t.id, "bot").await;
    let mut ws = app.online(&a, t.id).await;
    let path = format!("/api/agents/{}", a.agent.id);
    let (status, disabled) =
        call(&app, Method::POST, &format!("{path}/disable"), &admin, None).await;
    assert_eq!(
        (status, disabled["status"].as_str()),
        (StatusCode::OK, Some("disabled"))
    );
    assert_eq!(ws.closed().await, 4003);
    let refused = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let listed = walk(
        &app,
        &format!("/api/tenants/{}/agents?status=disabled", t.id),
        "agents",
        &admin,
        50,
    )
    .await;
    assert_eq!(listed.len(), 1);
    call(&app, Method::POST, &format!("{path}/enable"), &admin, None).await;
    let token = app
        .token_response(&a.agent.client_id, &a.client_secret)
        .await;
    assert_eq!(token.status(), StatusCode::OK);
}
