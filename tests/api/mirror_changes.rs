//! `PATCH` on mappings, aliases and identities: what GET shows changes, agents of
//! another tenant are refused, and each change is audited.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};
use crate::operator_api::call;

both_profiles!(mappings_aliases_and_identities_are_updated_in_place);

async fn mappings_aliases_and_identities_are_updated_in_place(p: Profile) {
    let app = TestApp::spawn(p).await;
    let key = app.operator_key("write", None).await;
    let t = app.tenant("acme").await;
    let (a, b) = (
        app.agent(t.id, "a").await.agent.id,
        app.agent(t.id, "b").await.agent.id,
    );
    let stranger = app.agent(app.tenant("other").await.id, "x").await.agent.id;
    let base = format!("/api/tenants/{}", t.id);

    let body = json!({"clickup_list_id": "L1", "slack_channel_id": "C1", "default_agents": [a]});
    let (status, mapping) = call(
        &app,
        Method::POST,
        &format!("{base}/mappings"),
        &key,
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{mapping}");
    let path = format!("{base}/mappings/{}", mapping["id"].as_str().expect("id"));
    let patch = json!({"default_agents": [b], "open_threads": false});
    let (status, changed) = call(&app, Method::PATCH, &path, &key, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let listed = app.get_json(&format!("{base}/mappings"), &key).await;
    assert_eq!(listed["mappings"][0]["default_agents"], json!([b]));
    assert_eq!(listed["mappings"][0]["open_threads"], false);
    let (status, _) = call(
        &app,
        Method::PATCH,
        &path,
        &key,
        Some(json!({"default_agents": [stranger]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "another tenant's agent");

    let body = json!({"alias": "squad", "agents": [a]});
    let (_, alias) = call(
        &app,
        Method::POST,
        &format!("{base}/aliases"),
        &key,
        Some(body),
    )
    .await;
    let path = format!("{base}/aliases/{}", alias["id"].as_str().expect("id"));
    let (status, changed) = call(
        &app,
        Method::PATCH,
        &path,
        &key,
        Some(json!({"agents": [a, b]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let listed = app.get_json(&format!("{base}/aliases"), &key).await;
    assert_eq!(
        listed["aliases"][0]["agents"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let (status, refused) = call(
        &app,
        Method::PATCH,
        &path,
        &key,
        Some(json!({"agents": []})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["error"]["details"]["fields"]["agents"].is_string(),
        "{refused}"
    );

    let body = json!({"agent_id": a, "provider": "slack", "external_user_id": "U0A"});
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{base}/identities"),
        &key,
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("{base}/identities/slack/U0A");
    let (status, moved) = call(
        &app,
        Method::PATCH,
        &path,
        &key,
        Some(json!({"agent_id": b})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    let listed = app.get_json(&format!("{base}/identities"), &key).await;
    assert_eq!(
        listed["identities"][0]["agent_id"],
        b.to_string(),
        "{listed}"
    );

    let audit = app
        .get_json(&format!("/api/audit?tenant={}", t.id), &key)
        .await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["mapping.update", "alias.update", "identity.update"] {
        assert_eq!(
            actions.iter().filter(|a| **a == action).count(),
            1,
            "{actions:?}"
        );
    }
}
