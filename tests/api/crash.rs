//! A node killed with SIGKILL while webhooks stream in: every webhook that got a 2xx
//! is in the jobs table after a restart.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::both_profiles;
use crate::cli::{json_lines, nexus};
use crate::helpers::{Profile, TestDb};

both_profiles!(sigkill_loses_no_acknowledged_webhook);

const TOKEN: &str = "crash-test-ingest-token";

async fn sigkill_loses_no_acknowledged_webhook(p: Profile) {
    let db = TestDb::new(p).await;
    let tenant = json_lines(&nexus(&db, &["tenant", "create", "--name", "acme"]))[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let agent = json_lines(&nexus(
        &db,
        &["agent", "create", "--tenant", &tenant, "--name", "bot"],
    ))[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let source = json_lines(&nexus(
        &db,
        &[
            "source",
            "add",
            "--tenant",
            &tenant,
            "--kind",
            "ingest",
            "--name",
            "putio",
            "--secret",
            TOKEN,
            "--to-agent",
            &agent,
        ],
    ))[0]
        .clone();
    let url_path = source["url_path"].as_str().expect("url_path").to_owned();
    let source_id = source["id"].as_str().expect("id").to_owned();

    let (mut node, addr) = spawn_serve(&db.url, &[]).await;

    // Four senders stream webhooks; when 150 are acknowledged the node is killed mid-stream.
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let enough = Arc::new(tokio::sync::Notify::new());
    let http = reqwest::Client::new();
    let mut senders = Vec::new();
    for s in 0..4 {
        let (http, acked, enough, url) = (
            http.clone(),
            acked.clone(),
            enough.clone(),
            format!("http://{addr}{url_path}"),
        );
        senders.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let key = format!("s{s}-{i}");
                let sent = http
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("idempotency-key", &key)
                    .body(format!("{{\"transfer\":\"{key}\"}}"))
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status().is_success() => {
                        let mut set = acked.lock().expect("acked");
                        set.insert(key);
                        if set.len() == 150 {
                            enough.notify_one();
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return, // the node is gone
                }
            }
        }));
    }
    enough.notified().await;
    node.start_kill().expect("SIGKILL");
    node.wait().await.expect("wait");
    for s in senders {
        s.await.expect("sender");
    }

    // Restart on the same database: every acknowledged webhook is a job.
    let acked = acked.lock().expect("acked").clone();
    assert!(acked.len() >= 150);
    let store = nexus::store::Store::connect(&db.url).await.expect("reopen");
    store.migrate().await.expect("migrate");
    let mut stored = HashSet::new();
    let mut cursor = None;
    loop {
        let page = nexus::queue::ops::list(&store, &Default::default(), cursor, 500)
            .await
            .expect("list");
        stored.extend(page.jobs.iter().map(|j| j.dedupe_key.clone()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let missing: Vec<&String> = acked
        .iter()
        .filter(|k| !stored.contains(&format!("{source_id}:{k}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged webhooks lost: {missing:?}",
        missing.len()
    );
    store.close().await;
}

/// `nexus serve` as a child process on `db_url` (plus `env`), killed on drop; its
/// listening address once it logs it.
pub async fn spawn_serve(db_url: &str, env: &[(&str, &str)]) -> (Child, String) {
    let mut node = Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", db_url)
        .envs(crate::helpers::secrets_key(db_url).map(|k| ("NEXUS_SECRETS_KEY", k)))
        .env("NEXUS_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(node.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("node exited before listening");
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"] == "nexus listening"
        {
            break v["addr"].as_str().expect("addr").to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (node, addr)
}
