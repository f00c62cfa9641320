//! The `nexus` binary: create commands print one JSON object per line; errors go to stderr.

use std::process::Output;

use serde_json::Value;

use crate::both_profiles;
use crate::helpers::{Profile, TestDb, secrets_key};

both_profiles!(
    create_list_and_token_round_trip,
    bulk_create_prints_one_line_per_agent,
    errors_go_to_stderr_with_nonzero_exit,
    sources_and_jobs_commands,
);

pub fn nexus(db: &TestDb, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("NEXUS_JWT_SECRET", "cli-test-secret-0123456789abcdefghij")
        .envs(secrets_key(&db.url).map(|k| ("NEXUS_SECRETS_KEY", k)))
        .env_remove("RUST_LOG")
        .output()
        .expect("run nexus")
}

pub fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "nexus failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn one(out: &Output) -> Value {
    let mut lines = json_lines(out);
    assert_eq!(lines.len(), 1, "expected exactly one JSON line");
    lines.remove(0)
}

async fn create_list_and_token_round_trip(p: Profile) {
    let db = TestDb::new(p).await;
    assert_eq!(one(&nexus(&db, &["migrate"]))["migrated"], true);

    let tenant = one(&nexus(&db, &["tenant", "create", "--name", "acme"]));
    let tenant_id = tenant["id"].as_str().expect("id").to_owned();
    assert_eq!(tenant["name"], "acme");
    let tenants = json_lines(&nexus(&db, &["tenant", "list"]));
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0]["id"], tenant_id.as_str());

    let agent = one(&nexus(
        &db,
        &[
            "agent",
            "create",
            "--tenant",
            &tenant_id,
            "--name",
            "bot",
            "--slack-user",
            "U123",
        ],
    ));
    for field in ["id", "tenant_id", "name", "client_id", "client_secret"] {
        assert!(agent[field].is_string(), "missing {field}: {agent}");
    }
    assert_eq!(agent["tenant_id"], tenant_id.as_str());
    let agent_id = agent["id"].as_str().expect("id");

    let listed = json_lines(&nexus(&db, &["agent", "list", "--tenant", &tenant_id]));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], agent_id);
    assert!(
        listed[0].get("client_secret").is_none(),
        "list must not show secrets"
    );
    assert_eq!(listed[0]["status"], "active");

    let by_secret = one(&nexus(
        &db,
        &[
            "token",
            "--client-id",
            agent["client_id"].as_str().expect("client_id"),
            "--client-secret",
            agent["client_secret"].as_str().expect("secret"),
        ],
    ));
    assert_eq!(by_secret["token_type"], "Bearer");
    let too_long = nexus(&db, &["token", "--agent", agent_id, "--ttl-s", "86401"]);
    assert!(
        !too_long.status.success(),
        "a token outliving a day is refused"
    );
    assert!(String::from_utf8_lossy(&too_long.stderr).contains("86400"));
    let bad_budget = nexus(&db, &["serve", "--queue-max-attempts-for", "tool.call=0"]);
    assert!(
        !bad_budget.status.success(),
        "a budget of 0 attempts is refused"
    );
    assert!(String::from_utf8_lossy(&bad_budget.stderr).contains("expected KIND=N"));
    let minted = one(&nexus(&db, &["token", "--agent", agent_id]));
    assert!(
        minted["access_token"]
            .as_str()
            .expect("token")
            .split('.')
            .count()
            == 3
    );

    let rotated = one(&nexus(&db, &["agent", "rotate-secret", agent_id]));
    assert_ne!(rotated["client_secret"], agent["client_secret"]);
    let old_secret = nexus(
        &db,
        &[
            "token",
            "--client-id",
            agent["client_id"].as_str().expect("client_id"),
            "--client-secret",
            agent["client_secret"].as_str().expect("secret"),
        ],
    );
    assert!(
        !old_secret.status.success(),
        "the old secret must stop working"
    );

    let disabled = one(&nexus(&db, &["agent", "disable", agent_id]));
    assert_eq!(disabled["status"], "disabled");
    assert!(!nexus(&db, &["token", "--agent", agent_id]).status.success());

    let key = one(&nexus(
        &db,
        &[
            "operator-key",
            "create",
            "--name",
            "ops",
            "--scopes",
            "read,write",
            "--tenant",
            &tenant_id,
        ],
    ));
    assert!(key["id"].is_string());
    assert!(key["key"].as_str().expect("key").starts_with("nxk_"));
    assert_eq!(key["scopes"], serde_json::json!(["read", "write"]));
}

async fn bulk_create_prints_one_line_per_agent(p: Profile) {
    let db = TestDb::new(p).await;
    let tenant = one(&nexus(&db, &["tenant", "create", "--name", "load"]));
    let tenant_id = tenant["id"].as_str().expect("id");
    let out = nexus(
        &db,
        &[
            "agent",
            "create",
            "--tenant",
            tenant_id,
            "--name-prefix",
            "lt-",
            "--count",
            "25",
        ],
    );
    let agents = json_lines(&out);
    assert_eq!(agents.len(), 25);
    let mut names: Vec<&str> = agents
        .iter()
        .map(|a| a["name"].as_str().expect("name"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 25);
    assert!(names.contains(&"lt-1") && names.contains(&"lt-25"));
    let secrets: std::collections::HashSet<&str> = agents
        .iter()
        .map(|a| a["client_secret"].as_str().expect("secret"))
        .collect();
    assert_eq!(secrets.len(), 25);
    assert_eq!(
        json_lines(&nexus(&db, &["agent", "list", "--tenant", tenant_id])).len(),
        25
    );
}

async fn errors_go_to_stderr_with_nonzero_exit(p: Profile) {
    let db = TestDb::new(p).await;
    let missing_tenant = nexus(
        &db,
        &[
            "agent",
            "create",
            "--tenant",
            &uuid::Uuid::now_v7().to_string(),
            "--name",
            "x",
        ],
    );
    assert!(!missing_tenant.status.success());
    assert!(missing_tenant.stdout.is_empty());
    assert!(String::from_utf8_lossy(&missing_tenant.stderr).contains("tenant not found"));

    let bad_id = nexus(&db, &["agent", "list", "--tenant", "not-a-uuid"]);
    assert!(!bad_id.status.success());
    assert!(bad_id.stdout.is_empty());

    one(&nexus(&db, &["tenant", "create", "--name", "dup"]));
    let dup = nexus(&db, &["tenant", "create", "--name", "dup"]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));

    let bad_scope = nexus(
        &db,
        &["operator-key", "create", "--name", "k", "--scopes", "root"],
    );
    assert!(!bad_scope.status.success());
}

async fn sources_and_jobs_commands(p: Profile) {
    let db = TestDb::new(p).await;
    let tenant = one(&nexus(&db, &["tenant", "create", "--name", "acme"]));
    let t = tenant["id"].as_str().expect("id");
    let slack = one(&nexus(
        &db,
        &[
            "source",
            "add",
            "--tenant",
            t,
            "--kind",
            "slack",
            "--team-id",
            "T1",
            "--signing-secret",
            "s3cr3t-signing",
        ],
    ));
    assert_eq!(slack["kind"], "slack");
    assert_eq!(
        slack["url_path"],
        format!("/webhooks/slack/{}", slack["id"].as_str().expect("id"))
    );
    assert!(
        !String::from_utf8_lossy(&nexus(&db, &["source", "list"]).stdout)
            .contains("s3cr3t-signing"),
        "secrets are never printed"
    );
    let clickup = one(&nexus(
        &db,
        &[
            "source",
            "add",
            "--tenant",
            t,
            "--kind",
            "clickup",
            "--webhook-id",
            "wh-9",
            "--secret",
            "clickup-secret",
        ],
    ));
    assert!(
        clickup["url_path"]
            .as_str()
            .expect("path")
            .starts_with("/webhooks/clickup/")
    );
    let no_rule = nexus(
        &db,
        &[
            "source",
            "add",
            "--tenant",
            t,
            "--kind",
            "ingest",
            "--name",
            "putio",
            "--secret",
            "ingest-secret",
        ],
    );
    assert!(
        !no_rule.status.success(),
        "an ingest source needs a recipient"
    );
    assert!(String::from_utf8_lossy(&no_rule.stderr).contains("--to-agent"));
    assert_eq!(
        json_lines(&nexus(&db, &["source", "list", "--tenant", t])).len(),
        2
    );
    one(&nexus(
        &db,
        &["source", "remove", slack["id"].as_str().expect("id")],
    ));
    assert_eq!(json_lines(&nexus(&db, &["source", "list"])).len(), 1);

    let stats = one(&nexus(&db, &["jobs", "stats"]));
    assert_eq!(stats["counts"]["queued"], 0);
    assert!(json_lines(&nexus(&db, &["jobs", "list", "--status", "dead"])).is_empty());
    assert_eq!(one(&nexus(&db, &["jobs", "replay"]))["replayed"], 0);
    assert!(
        !nexus(&db, &["jobs", "show", &uuid::Uuid::now_v7().to_string()])
            .status
            .success()
    );
}
