//! Configuring the mirror: mappings, aliases and identities through the CLI and the
//! operator API, which share one set of functions and must agree.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_profiles;
use crate::cli::{json_lines, nexus};
use crate::helpers::{Profile, TestApp, TestDb};

both_profiles!(
    cli_manages_mappings_aliases_and_identities,
    api_manages_mappings_aliases_and_identities,
    a_stored_id_that_does_not_parse_is_a_storage_error
);

fn one(out: &std::process::Output) -> Value {
    let mut lines = json_lines(out);
    assert_eq!(lines.len(), 1, "expected exactly one JSON line");
    lines.remove(0)
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn cli_manages_mappings_aliases_and_identities(p: Profile) {
    let db = TestDb::new(p).await;
    // Every argument here is one word: a command line reads best as one string.
    let run = |line: String| nexus(&db, &line.split_whitespace().collect::<Vec<_>>());
    let tenant = id(&one(&run("tenant create --name acme".into())));
    let agent = |name: &str| {
        id(&one(&run(format!(
            "agent create --tenant {tenant} --name {name}"
        ))))
    };
    let (a1, a2) = (agent("a1"), agent("a2"));

    let mapping = one(&run(format!(
        "mapping add --tenant {tenant} --clickup-list L1 --slack-channel C1 \
         --default-agent {a1} --default-agent {a2} --no-open-threads"
    )));
    assert_eq!(
        (
            &mapping["clickup_list_id"],
            &mapping["slack_channel_id"],
            &mapping["open_threads"]
        ),
        (&json!("L1"), &json!("C1"), &json!(false))
    );
    let mut both = vec![a1.clone(), a2.clone()];
    both.sort();
    assert_eq!(mapping["default_agents"], json!(both));
    let again = run(format!(
        "mapping add --tenant {tenant} --clickup-list L1 --slack-channel C2"
    ));
    assert!(!again.status.success(), "a list maps to one channel");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let listed = json_lines(&run(format!("mapping list --tenant {tenant}")));
    assert_eq!(listed, vec![mapping.clone()]);

    let alias = one(&run(format!(
        "alias add --tenant {tenant} --alias @AI_Squad --agent {a1}"
    )));
    assert_eq!(
        (&alias["alias"], &alias["agents"]),
        (&json!("AI_Squad"), &json!([a1]))
    );
    let grown = one(&run(format!(
        "alias add --tenant {tenant} --alias AI_Squad --agent {a2}"
    )));
    assert_eq!(grown["id"], alias["id"], "adding to an alias keeps it");
    assert_eq!(grown["agents"], json!(both));
    let bad = nexus(
        &db,
        &[
            "alias",
            "add",
            "--tenant",
            &tenant,
            "--alias",
            "two words",
            "--agent",
            &a1,
        ],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("the alias must be"));
    // Malformed ids are refused by the argument parser, naming the rule.
    for (list, channel, refused) in [
        ("L/1", "C3", "the ClickUp list id must be 1–64 characters"),
        (
            "L3",
            "#general",
            "the Slack channel id must be 1–64 characters",
        ),
    ] {
        let bad = run(format!(
            "mapping add --tenant {tenant} --clickup-list {list} --slack-channel {channel}"
        ));
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(
            !bad.status.success() && stderr.contains(refused),
            "{stderr}"
        );
    }
    let bad = run(format!("identity add --agent {a1} --slack-user U@1"));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("the Slack user id must be"), "{stderr}");

    let identity = one(&run(format!(
        "identity add --agent {a1} --clickup-user 111"
    )));
    assert_eq!(
        identity,
        json!({"agent_id": a1, "tenant_id": tenant, "provider": "clickup", "external_user_id": "111"})
    );
    let taken = run(format!("identity add --agent {a2} --clickup-user 111"));
    assert!(!taken.status.success(), "one ClickUp user is one agent");
    let identities = || json_lines(&run(format!("identity list --tenant {tenant}")));
    assert_eq!(identities(), vec![identity]);
    one(&run(format!(
        "identity remove --agent {a1} --clickup-user 111"
    )));
    assert!(identities().is_empty());

    one(&run(format!("alias remove {}", id(&alias))));
    one(&run(format!("mapping remove {}", id(&mapping))));
    for what in ["alias", "mapping", "channel"] {
        assert!(
            json_lines(&run(format!("{what} list --tenant {tenant}"))).is_empty(),
            "{what}"
        );
    }
}

async fn api_manages_mappings_aliases_and_identities(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await.id;
    let other = app.tenant("other").await.id;
    let a1 = app.agent(t, "a1").await.agent.id;
    let stranger = app.agent(other, "s1").await.agent.id;
    let key = app.operator_key("read,write", Some(t)).await;
    let reader = app.operator_key("read", Some(t)).await;
    let call = |method: reqwest::Method, path: String, key: &str, body: Option<Value>| {
        let mut req = app.http.request(method, app.url(&path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let resp = req.send().await.expect("send");
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    use reqwest::Method;

    let path = format!("/api/tenants/{t}/mappings");
    let body = json!({"clickup_list_id": "L1", "slack_channel_id": "C1", "default_agents": [a1]});
    let (status, mapping) = call(Method::POST, path.clone(), &key, Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{mapping}");
    assert_eq!(
        (&mapping["open_threads"], &mapping["default_agents"]),
        (&json!(true), &json!([a1]))
    );
    let (status, err) = call(Method::POST, path.clone(), &key, Some(body)).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (StatusCode::CONFLICT, &json!("conflict"))
    );
    let (status, err) = call(
        Method::POST,
        path.clone(),
        &key,
        Some(json!({"clickup_list_id": "L2", "slack_channel_id": "C2", "default_agents": [stranger]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    // Another tenant's agent gets the answer a made-up id gets: its existence stays hidden.
    let made_up = nexus_proto::AgentId::new_v7();
    let (status_x, err_x) = call(
        Method::POST,
        path.clone(),
        &key,
        Some(
            json!({"clickup_list_id": "L2", "slack_channel_id": "C2", "default_agents": [made_up]}),
        ),
    )
    .await;
    assert_eq!(
        (status, err.to_string().replace(&stranger.to_string(), "ID")),
        (
            status_x,
            err_x.to_string().replace(&made_up.to_string(), "ID")
        )
    );
    let (status, err) = call(
        Method::POST,
        path.clone(),
        &key,
        Some(json!({"clickup_list_id": "L 2", "slack_channel_id": "C2"})),
    )
    .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request")),
        "{err}"
    );
    let message = err["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("clickup_list_id: the ClickUp list id must be 1–64 characters"),
        "{message}"
    );
    let (status, _) = call(
        Method::POST,
        path.clone(),
        &reader,
        Some(json!({"clickup_list_id": "L3", "slack_channel_id": "C3"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "read-only keys can't map");
    let (status, _) = call(
        Method::GET,
        format!("/api/tenants/{other}/mappings"),
        &key,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a tenant-bound key sees only its tenant"
    );
    let (_, listed) = call(Method::GET, path.clone(), &reader, None).await;
    assert_eq!(listed["mappings"], json!([mapping]));

    let (status, alias) = call(
        Method::POST,
        format!("/api/tenants/{t}/aliases"),
        &key,
        Some(json!({"alias": "AI_Squad", "agents": [a1]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{alias}");
    let (_, aliases) = call(
        Method::GET,
        format!("/api/tenants/{t}/aliases"),
        &reader,
        None,
    )
    .await;
    assert_eq!(aliases["aliases"], json!([alias]));

    let (status, identity) = call(
        Method::POST,
        format!("/api/tenants/{t}/identities"),
        &key,
        Some(json!({"agent_id": a1, "provider": "slack", "external_user_id": "U1"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{identity}");
    let (status, err) = call(
        Method::POST,
        format!("/api/tenants/{t}/identities"),
        &key,
        Some(json!({"agent_id": a1, "provider": "clickup", "external_user_id": "1 1"})),
    )
    .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request")),
        "{err}"
    );
    let message = err["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("the ClickUp user id must be"), "{message}");
    let (status, err) = call(
        Method::POST,
        format!("/api/tenants/{t}/identities"),
        &key,
        Some(json!({"agent_id": stranger, "provider": "slack", "external_user_id": "U2"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("is not an agent of this tenant"),
        "an agent of another tenant is invisible: {err}"
    );
    let (_, identities) = call(
        Method::GET,
        format!("/api/tenants/{t}/identities"),
        &reader,
        None,
    )
    .await;
    assert_eq!(identities["identities"], json!([identity]));

    let (status, err) = call(
        Method::DELETE,
        format!("/api/tenants/{t}/identities/slack/U%201"),
        &key,
        None,
    )
    .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request")),
        "{err}"
    );
    for path in [
        format!("/api/tenants/{t}/identities/slack/U1"),
        format!(
            "/api/tenants/{t}/aliases/{}",
            alias["id"].as_str().expect("id")
        ),
        format!(
            "/api/tenants/{t}/mappings/{}",
            mapping["id"].as_str().expect("id")
        ),
    ] {
        let (status, _) = call(Method::DELETE, path.clone(), &key, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}");
        let (status, _) = call(Method::DELETE, path.clone(), &key, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} is gone");
    }
}

/// Ids are parsed when read back too: a row changed behind Nexus's back is an internal
/// error for that request, not a panic.
async fn a_stored_id_that_does_not_parse_is_a_storage_error(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await.id;
    let key = app.operator_key("read,write", Some(t)).await;
    let path = format!("/api/tenants/{t}/mappings");
    let body = json!({"clickup_list_id": "L1", "slack_channel_id": "C1"});
    let (status, _) = app.post_json(&path, &key, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let corrupt = "UPDATE project_mappings SET slack_channel_id = '#general'";
    match p {
        Profile::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.db.url)
                .await
                .expect("connect");
            sqlx::query(corrupt).execute(&pool).await.expect("update");
        }
        Profile::Postgres => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.expect("connect");
            sqlx::query(corrupt).execute(&pool).await.expect("update");
        }
    }
    let resp = app
        .http
        .get(app.url(&path))
        .bearer_auth(&key)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err["error"]["code"], "internal");
    let (status, _) = app.post_json(&path, &key, body.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "the node still answers");
}
