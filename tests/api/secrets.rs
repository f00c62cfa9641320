//! Secrets at rest: source secrets, provider tokens and the generated JWT key are sealed
//! with a key kept outside the database; the key rotates; the SQLite files and the key
//! file are private; Slack's legacy verification token is not kept.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use nexus::app::Application;
use nexus::config::{Config, SecretsKeyOpts};
use nexus::store::{NewJob, sqlite_file};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_profiles;
use crate::cli::one;
use crate::helpers::{Profile, TestApp, TestDb, secrets_key, serve_opts};
use crate::serve::start_with;
use crate::webhook_support::*;

both_profiles!(
    source_secrets_appear_nowhere_in_the_database_or_the_logs,
    slack_legacy_token_is_neither_stored_nor_served,
    rotated_key_opens_the_secrets_and_the_old_one_no_longer_does,
    plaintext_secrets_of_an_older_database_are_sealed_on_start,
    a_wrong_or_missing_key_stops_the_node_with_a_clear_error,
);

const SIGNING_SECRET: &str = "distinctive-signing-secret-93be2f";
const BOT_TOKEN: &str = "xoxb-distinctive-bot-token-7d41c0";

/// The environment giving the test PostgreSQL's key (SQLite keeps its key file).
fn key_env(db: &TestDb) -> Vec<(&'static str, &'static str)> {
    secrets_key(&db.url)
        .map(|k| ("NEXUS_SECRETS_KEY", k))
        .into_iter()
        .collect()
}

/// `nexus ARGS` on `db` with exactly `env` for its key, `stdin` written to it.
fn run(db: &TestDb, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env_remove("NEXUS_SECRETS_KEY")
        .env_remove("NEXUS_SECRETS_KEY_FILE")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nexus");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("nexus")
}

/// Everything the database holds, as text: every file of a SQLite database (the
/// database, its WAL, the key file) byte for byte, or every row of every table of the
/// test's PostgreSQL schema.
async fn database_contents(url: &str) -> String {
    if let Some(file) = sqlite_file(url) {
        let dir = file.parent().expect("dir");
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).expect("read dir") {
            all.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
        }
        return String::from_utf8_lossy(&all).into_owned();
    }
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    .fetch_all(&pool)
    .await
    .expect("tables");
    let mut all = String::new();
    for table in tables {
        let sql = format!("SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t");
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&pool)
            .await
            .expect("rows");
        all.push_str(&rows);
    }
    pool.close().await;
    all
}

/// Runs `statements` on the database directly, as an older version would have written.
async fn execute(url: &str, statements: &[&'static str]) {
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        for s in statements {
            sqlx::query(*s).execute(&pool).await.expect("statement");
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        for s in statements {
            sqlx::query(*s).execute(&pool).await.expect("statement");
        }
        pool.close().await;
    }
}

/// Why a node on `db` with `key` does not start.
async fn start_error(db: &TestDb, key: SecretsKeyOpts) -> String {
    let config = Config {
        database_url: db.url.clone(),
        serve: serve_opts(),
        jwt_secret: Some("integration-test-secret-0123456789abcdef".into()),
        secrets_key: key,
        tiers: Default::default(),
        prices: Default::default(),
    };
    match Application::build(config).await {
        Ok(_) => panic!("the node started"),
        Err(e) => e.to_string(),
    }
}

fn default_key(db: &TestDb) -> SecretsKeyOpts {
    SecretsKeyOpts {
        key: secrets_key(&db.url).map(str::to_owned),
        file: None,
    }
}

fn key_file_opts(file: &Path) -> impl FnOnce(&mut Config) {
    let file = file.to_owned();
    move |c: &mut Config| {
        c.secrets_key = SecretsKeyOpts {
            key: None,
            file: Some(file),
        }
    }
}

/// The SQLite database's default key file, `FILE.key`.
fn sqlite_key_file(url: &str) -> Option<PathBuf> {
    sqlite_file(url).map(|f| PathBuf::from(format!("{}.key", f.display())))
}

async fn source_secrets_appear_nowhere_in_the_database_or_the_logs(p: Profile) {
    let db = TestDb::new(p).await;
    let keys = key_env(&db);
    let tenant = one(&run(
        &db,
        &["tenant", "create", "--name", "acme"],
        &keys,
        "",
    ));
    // The signing secret on stdin, the bot token in its environment variable.
    let mut env = keys.clone();
    env.push(("NEXUS_SLACK_BOT_TOKEN", BOT_TOKEN));
    let args = [
        "source",
        "add",
        "--tenant",
        tenant["id"].as_str().expect("id"),
        "--kind",
        "slack",
        "--team-id",
        "T900",
        "--signing-secret",
        "-",
    ];
    let added = run(&db, &args, &env, &format!("{SIGNING_SECRET}\n"));
    let source = one(&added);
    let mut logs = String::from_utf8_lossy(&added.stderr).into_owned();

    let cwd = tempfile::tempdir().expect("tempdir");
    let mut node_env = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("NEXUS_SLACK_API_URL", "http://127.0.0.1:9"),
        ("NEXUS_CLICKUP_API_URL", "http://127.0.0.1:9"),
    ];
    node_env.extend(keys.iter().copied());
    let node = start_with(cwd.path(), &node_env).await;
    let body = slack_event("Ev900", "T900");
    let ts = now_s();
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}{}",
            node.addr,
            source["url_path"].as_str().expect("url_path")
        ))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", ts.to_string())
        .header(
            "x-slack-signature",
            slack_signature(SIGNING_SECRET, ts, &body),
        )
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK, "the sealed secret verifies");
    let running = database_contents(&db.url).await;
    logs.extend(node.stop().await);
    let stopped = database_contents(&db.url).await;

    for contents in [&running, &stopped] {
        assert!(contents.contains("T900"), "the dump holds the source's row");
        assert!(contents.contains("Ev900"), "the dump holds the job");
    }
    assert!(logs.contains("nexus listening"), "the logs were captured");
    for (what, secret) in [("signing secret", SIGNING_SECRET), ("bot token", BOT_TOKEN)] {
        assert!(!running.contains(secret), "the database holds the {what}");
        assert!(!stopped.contains(secret), "the database holds the {what}");
        assert!(!logs.contains(secret), "the logs hold the {what}");
    }
}

async fn slack_legacy_token_is_neither_stored_nor_served(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let source = app.slack_source(t.id, "T001").await;
    let mut body: Value = serde_json::from_str(&slack_event("Ev001", "T001")).expect("json");
    body["token"] = json!("legacy-verif-token");
    let body = body.to_string();
    let (status, answer) = app
        .post_slack(&source.url_path, &body, now_s(), SLACK_SECRET)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "accepted");
    let id: uuid::Uuid = answer["job_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let (job, _) = app.state.store.get_job(id).await.expect("job");
    assert!(
        !job.payload.contains("legacy-verif-token"),
        "{}",
        job.payload
    );
    let stored: Value = serde_json::from_str(&job.payload).expect("json");
    assert_eq!(stored["event_id"], "Ev001");
    assert_eq!(stored["event"]["text"], "hello", "the rest is kept");

    let key = app.operator_key("read", None).await;
    let shown = app.get_json(&format!("/api/jobs/{id}"), &key).await;
    assert_eq!(shown["payload"]["event_id"], "Ev001");
    assert!(!shown.to_string().contains("legacy-verif-token"));

    // A job stored before intake dropped the token is not served with it either.
    let old = app
        .state
        .store
        .enqueue(NewJob {
            tenant_id: t.id,
            source_id: Some(source.id),
            source: "slack".into(),
            kind: "slack.event".into(),
            dedupe_key: format!("{}:Ev000", source.id),
            payload: body,
            trace_id: None,
            max_attempts: 1,
            run_at: i64::MAX,
        })
        .await
        .expect("enqueue");
    let nexus::store::Enqueued::Created(old) = old else {
        panic!("a new job")
    };
    let shown = app.get_json(&format!("/api/jobs/{old}"), &key).await;
    assert_eq!(shown["payload"]["event_id"], "Ev001");
    assert!(!shown.to_string().contains("legacy-verif-token"));
}

async fn rotated_key_opens_the_secrets_and_the_old_one_no_longer_does(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    let source = app.slack_source(t.id, "T001").await;
    let db = app.stop().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let new_file = dir.path().join("new.key");
    let new_path = new_file.to_str().expect("path");

    let args = ["secrets", "rotate-key", "--new-key-file", new_path];
    let rotated = one(&run(&db, &args, &key_env(&db), ""));
    assert_eq!(rotated["resealed"], 1, "the source's secret: {rotated}");
    assert_eq!(rotated["key_file"], new_path);
    let err = start_error(&db, default_key(&db)).await;
    assert!(
        err.contains("sealed with key") && err.contains(rotated["key_id"].as_str().expect("id")),
        "{err}"
    );
    let app = TestApp::spawn_on(db, key_file_opts(&new_file)).await;
    let body = slack_event("Ev001", "T001");
    let (status, answer) = app
        .post_slack(&source.url_path, &body, now_s(), SLACK_SECRET)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // With no new key given, a fresh one replaces the key file once all is re-sealed.
    let db = app.stop().await;
    let args = ["secrets", "rotate-key", "--secrets-key-file", new_path];
    let again = one(&run(&db, &args, &[], ""));
    assert_ne!(again["key_id"], rotated["key_id"]);
    assert_eq!(again["key_file"], new_path);
    assert!(!dir.path().join("new.key.new").exists());
    let app = TestApp::spawn_on(db, key_file_opts(&new_file)).await;
    let body = slack_event("Ev002", "T001");
    let (status, answer) = app
        .post_slack(&source.url_path, &body, now_s(), SLACK_SECRET)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

async fn plaintext_secrets_of_an_older_database_are_sealed_on_start(p: Profile) {
    let app = TestApp::spawn_with(p, |c| c.jwt_secret = None).await;
    let t = app.tenant("acme").await;
    let source = app.slack_source(t.id, "T001").await;
    let db = app.stop().await;
    // As a database from before sealing left them: plaintext, no key recorded, no key file.
    execute(
        &db.url,
        &[
            "UPDATE sources SET secret = 'plain-signing-secret-01', api_token = 'xoxb-plain-token-01'",
            "UPDATE settings SET value = 'plain-jwt-secret-0123456789' WHERE name = 'jwt_secret'",
            "DELETE FROM settings WHERE name = 'secrets_key_id'",
        ],
    )
    .await;
    if let Some(file) = sqlite_key_file(&db.url) {
        std::fs::remove_file(file).expect("remove the key file");
    }

    let app = TestApp::spawn_on(db, |c| c.jwt_secret = None).await;
    let url = &app.db.url;
    const SECRETS: &str = "SELECT secret FROM sources UNION ALL SELECT api_token FROM sources \
                           UNION ALL SELECT value FROM settings WHERE name = 'jwt_secret'";
    let sealed: Vec<String> = if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        let rows = sqlx::query_scalar(SECRETS).fetch_all(&pool).await;
        pool.close().await;
        rows.expect("select")
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let rows = sqlx::query_scalar(SECRETS).fetch_all(&pool).await;
        pool.close().await;
        let contents = database_contents(url).await;
        assert!(!contents.contains("plain-"), "a row holds plaintext");
        rows.expect("select")
    };
    assert_eq!(sealed.len(), 3);
    for value in &sealed {
        assert!(value.starts_with("sealed:v1:"), "not sealed: {value}");
    }

    // Sealed, they open to what they were.
    let (status, answer) = app
        .post_slack(
            &source.url_path,
            &slack_event("Ev001", "T001"),
            now_s(),
            "plain-signing-secret-01",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let store = &app.state.store;
    let opened = store.get_source(source.id).await.expect("source");
    assert_eq!(
        opened.api_token.as_ref().map(|t| t.expose()),
        Some("xoxb-plain-token-01")
    );
    let jwt = store
        .secret_setting_or_init("jwt_secret", String::new)
        .await
        .expect("jwt secret");
    assert_eq!(jwt.expose(), "plain-jwt-secret-0123456789");
}

async fn a_wrong_or_missing_key_stops_the_node_with_a_clear_error(p: Profile) {
    let app = TestApp::spawn(p).await;
    let t = app.tenant("acme").await;
    app.slack_source(t.id, "T001").await;
    let db = app.stop().await;

    let other = SecretsKeyOpts {
        key: Some("b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDE=".into()),
        file: None,
    };
    let err = start_error(&db, other).await;
    assert!(
        err.contains("NEXUS_SECRETS_KEY") && err.contains("sealed with key"),
        "{err}"
    );
    let bad = SecretsKeyOpts {
        key: Some("not-a-key".into()),
        file: None,
    };
    let err = start_error(&db, bad).await;
    assert!(err.contains("is not a secrets key"), "{err}");

    match sqlite_key_file(&db.url) {
        Some(file) => {
            std::fs::remove_file(&file).expect("remove the key file");
            let err = start_error(&db, default_key(&db)).await;
            assert!(
                err.contains(&file.display().to_string()) && err.contains("missing"),
                "{err}"
            );
            assert!(!file.exists(), "no new key replaces a lost one");
        }
        None => {
            let err = start_error(&db, SecretsKeyOpts::default()).await;
            assert!(
                err.contains("PostgreSQL") && err.contains("NEXUS_SECRETS_KEY"),
                "{err}"
            );
        }
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_and_the_key_file_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(Profile::Sqlite).await;
    let t = app.tenant("acme").await;
    app.slack_source(t.id, "T001").await;
    let file = sqlite_file(&app.db.url).expect("a file");
    for suffix in ["", "-wal", "-shm", ".key"] {
        let path = format!("{}{suffix}", file.display());
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{path} is {:o}", mode & 0o777);
    }
}
