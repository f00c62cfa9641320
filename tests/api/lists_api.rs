//! Every operator list pages the same way: `?cursor=&limit=`, `{"<things>":[…],
//! "next_cursor"}` with `null` on the last page, a 400 naming `limit` or `cursor` for a
//! bad one, and a tenant-bound key sees only its tenant's rows.

use std::collections::HashSet;

use nexus::store::{ExternalUser, NewJob, NewMapping, Provider};
use nexus_proto::{AgentId, TenantId};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::both_profiles;
use crate::helpers::{Profile, TestApp};
use crate::operator_api::{call, walk};

both_profiles!(
    operator_keys_are_paged_and_tenant_bound,
    jobs_are_paged_and_tenant_bound,
    mirror_lists_are_paged_and_tenant_bound,
    bad_paging_is_a_400_naming_the_field,
);

/// Each of `lists` (path, plural) walked with pages of 1 and of 2 holds `expected`
/// items, each once.
async fn pages_hold(app: &TestApp, key: &str, lists: &[(String, &str, usize)]) {
    for (path, plural, expected) in lists {
        for limit in [1, 2] {
            let all = walk(app, path, plural, key, limit).await;
            assert_eq!(all.len(), *expected, "{path} by {limit}: {all:?}");
        }
    }
}

async fn operator_keys_are_paged_and_tenant_bound(p: Profile) {
    let app = TestApp::spawn(p).await;
    let admin = app.operator_key("admin", None).await;
    let (t, other) = (app.tenant("acme").await.id, app.tenant("other").await.id);
    let bound = app.operator_key("admin", Some(t)).await;
    for _ in 0..2 {
        app.operator_key("read", Some(t)).await;
        app.operator_key("read", Some(other)).await;
    }
    let all = walk(&app, "/api/operator-keys", "keys", &admin, 2).await;
    assert_eq!(all.len(), 6, "every live key once: {all:?}");
    assert!(all.iter().all(|k| k.get("key").is_none()), "never the key");
    let ids: Vec<&str> = all.iter().filter_map(|k| k["id"].as_str()).collect();
    assert!(ids.is_sorted(), "oldest first (by UUIDv7): {ids:?}");

    let theirs = walk(&app, "/api/operator-keys", "keys", &bound, 1).await;
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    assert!(theirs.iter().all(|k| k["tenant_id"] == t.to_string()));
}

fn job(tenant: TenantId, n: usize) -> NewJob {
    NewJob {
        tenant_id: tenant,
        source_id: None,
        source: "test".into(),
        kind: "test.list".into(),
        dedupe_key: format!("list-{n}"),
        payload: "{}".into(),
        trace_id: None,
        max_attempts: 3,
        // Never due: no worker claims them while the test reads.
        run_at: i64::MAX / 2,
    }
}

async fn jobs_are_paged_and_tenant_bound(p: Profile) {
    let app = TestApp::spawn(p).await;
    let admin = app.operator_key("admin", None).await;
    let (t, other) = (app.tenant("acme").await.id, app.tenant("other").await.id);
    for n in 0..5 {
        let tenant = if n < 3 { t } else { other };
        app.state
            .store
            .enqueue(job(tenant, n))
            .await
            .expect("enqueue");
    }
    let lists = [("/api/jobs?kind=test.list".to_owned(), "jobs", 5)];
    pages_hold(&app, &admin, &lists).await;
    // A page exactly as long as what is left is the last one.
    let (_, page) = call(&app, Method::GET, "/api/jobs?limit=5", &admin, None).await;
    assert_eq!(page["next_cursor"], Value::Null, "{page}");

    let bound = app.operator_key("read", Some(t)).await;
    let theirs = walk(&app, "/api/jobs", "jobs", &bound, 2).await;
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    assert!(theirs.iter().all(|j| j["tenant_id"] == t.to_string()));
}

/// Three mappings, aliases, identities and channels of `tenant`.
async fn mirror_rows(app: &TestApp, tenant: TenantId, agents: &[AgentId]) {
    let store = &app.state.store;
    for (i, agent) in agents.iter().enumerate() {
        let mapping = NewMapping {
            tenant_id: tenant,
            clickup_list_id: format!("L{i}").parse().expect("list"),
            slack_channel_id: format!("C{i}").parse().expect("channel"),
            open_threads: true,
            default_agents: agents.to_vec(),
        };
        store.create_mapping(mapping).await.expect("mapping");
        let alias = format!("squad{i}");
        store
            .add_alias(tenant, &alias, agents)
            .await
            .expect("alias");
        let (provider, prefix) = [(Provider::Slack, "U"), (Provider::Clickup, "")][i % 2];
        let user = ExternalUser::parse(provider, &format!("{prefix}{}", 100 + i)).expect("user");
        store.add_identity(*agent, user).await.expect("identity");
        let channel = format!("C{i}").parse().expect("channel");
        store
            .record_channel(tenant, &channel, &alias)
            .await
            .expect("channel");
    }
}

async fn mirror_lists_are_paged_and_tenant_bound(p: Profile) {
    let app = TestApp::spawn(p).await;
    let (t, other) = (app.tenant("acme").await.id, app.tenant("other").await.id);
    for tenant in [t, other] {
        let mut agents = Vec::new();
        for i in 0..3 {
            agents.push(app.agent(tenant, &format!("a{i}")).await.agent.id);
        }
        mirror_rows(&app, tenant, &agents).await;
    }
    let bound = app.operator_key("read", Some(t)).await;
    let lists: Vec<(String, &str, usize)> = ["mappings", "aliases", "identities", "channels"]
        .into_iter()
        .map(|plural| (format!("/api/tenants/{t}/{plural}"), plural, 3))
        .collect();
    pages_hold(&app, &bound, &lists).await;

    let mappings = walk(&app, &lists[0].0, "mappings", &bound, 1).await;
    assert!(
        mappings
            .iter()
            .all(|m| m["default_agents"].as_array().map(Vec::len) == Some(3)),
        "a page limits mappings, not their agents: {mappings:?}"
    );
    let identities = walk(&app, &lists[2].0, "identities", &bound, 1).await;
    let users: HashSet<&str> = identities
        .iter()
        .filter_map(|i| i["external_user_id"].as_str())
        .collect();
    assert_eq!(users, HashSet::from(["U100", "101", "U102"]));
    for plural in ["mappings", "aliases", "identities", "channels"] {
        let path = format!("/api/tenants/{other}/{plural}");
        let (status, answer) = call(&app, Method::GET, &path, &bound, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
}

async fn bad_paging_is_a_400_naming_the_field(p: Profile) {
    let app = TestApp::spawn(p).await;
    let admin = app.operator_key("admin", None).await;
    let t = app.tenant("acme").await.id;
    let lists = [
        "/api/operator-keys".to_owned(),
        "/api/jobs".to_owned(),
        "/api/jobs?status=dead".to_owned(),
        format!("/api/tenants/{t}/mappings"),
        format!("/api/tenants/{t}/aliases"),
        format!("/api/tenants/{t}/identities"),
        format!("/api/tenants/{t}/channels"),
    ];
    let bad = [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("cursor=nope", "cursor"),
    ];
    for list in &lists {
        for (query, field) in bad {
            let sep = if list.contains('?') { '&' } else { '?' };
            let path = format!("{list}{sep}{query}");
            let (status, answer) = call(&app, Method::GET, &path, &admin, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
            assert_eq!(answer["error"]["code"], "invalid", "{path}: {answer}");
            assert!(
                answer["error"]["details"]["fields"][field].is_string(),
                "{path} should name {field}: {answer}"
            );
        }
    }
}
