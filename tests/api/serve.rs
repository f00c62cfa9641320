//! `nexus serve` as a user runs it: no configuration, a SQLite file in the working
//! directory, data kept across restarts, clean exit on SIGTERM, no secret in the logs.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::request_token;

pub struct Node {
    child: Child,
    pub addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

pub async fn start(dir: &std::path::Path) -> Node {
    start_with(dir, &[]).await
}

/// As [`start`], with `env` added (another database, a key).
pub async fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("NEXUS_JWT_SECRET")
        .env("RUST_LOG", "debug")
        .env("NEXUS_LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nexus serve");
    let stderr = child.stderr.take().expect("stderr");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let sink = logs.clone();
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut addr_tx = Some(addr_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "nexus listening"
                && let Some(tx) = addr_tx.take()
            {
                let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
            }
            sink.lock().expect("logs").push(line);
        }
    });
    let addr = tokio::time::timeout(std::time::Duration::from_secs(30), addr_rx)
        .await
        .expect("node did not report its address in 30 s")
        .expect("node exited before listening");
    Node {
        child,
        addr,
        logs,
        reader,
    }
}

impl Node {
    pub async fn stop(mut self) -> Vec<String> {
        let pid = self.child.id().expect("pid") as i32;
        // SIGTERM, as an orchestrator would.
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(std::time::Duration::from_secs(30), self.child.wait())
            .await
            .expect("node did not stop within 30 s of SIGTERM")
            .expect("wait");
        assert!(exit.success(), "node exited with {exit}");
        // The reader ends at EOF, once the exited node's stderr is drained.
        self.reader.await.expect("log reader");
        self.logs.lock().expect("logs").clone()
    }
}

pub fn cli(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("NEXUS_JWT_SECRET")
        .output()
        .expect("run nexus");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_node_keeps_data_across_restarts_and_logs_no_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = reqwest::Client::new();

    let node = start(dir.path()).await;
    assert!(
        dir.path().join("nexus.db").exists(),
        "the default database is ./nexus.db"
    );
    let tenant = cli(dir.path(), &["tenant", "create", "--name", "acme"]);
    let agent = cli(
        dir.path(),
        &[
            "agent",
            "create",
            "--tenant",
            tenant["id"].as_str().expect("id"),
            "--name",
            "bot",
        ],
    );
    let (client_id, secret) = (
        agent["client_id"].as_str().expect("client_id").to_owned(),
        agent["client_secret"].as_str().expect("secret").to_owned(),
    );
    let ok = request_token(&http, &node.addr, &client_id, &secret).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let token1: Value = ok.json().await.expect("json");
    // A wrong secret in the form body: the log check below covers both places a client
    // secret travels (the Basic header above, the body here).
    let bad = http
        .post(format!("http://{}/auth/token", node.addr))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id.as_str()),
            ("client_secret", &format!("{secret}x")),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let mut logs = node.stop().await;

    // Restart on the same file: the agent, its secret and the signing key survive.
    let node = start(dir.path()).await;
    let again = request_token(&http, &node.addr, &client_id, &secret).await;
    assert_eq!(again.status(), StatusCode::OK);
    let token2: Value = again.json().await.expect("json");
    logs.extend(node.stop().await);

    let jwt_secret = {
        let url = format!("sqlite://{}", dir.path().join("nexus.db").display());
        let mut store = nexus::store::Store::connect(&url).await.expect("open");
        nexus::app::open_secrets(&mut store, &url, &Default::default())
            .await
            .expect("the key file beside the database");
        let s = store
            .secret_setting_or_init("jwt_secret", String::new)
            .await
            .expect("secret");
        store.close().await;
        s.expose().to_owned()
    };
    assert!(
        !jwt_secret.is_empty(),
        "the node generated and kept a signing secret"
    );
    let all = logs.join("\n");
    assert!(all.contains("nexus listening") && all.contains("nexus stopped"));
    assert!(
        all.contains("client authentication failed"),
        "failures are logged"
    );
    for (what, secret) in [
        ("client secret", secret.as_str()),
        ("access token", token1["access_token"].as_str().expect("t1")),
        ("access token", token2["access_token"].as_str().expect("t2")),
        ("JWT signing secret", jwt_secret.as_str()),
    ] {
        assert!(!all.contains(secret), "the logs contain the {what}");
    }
}
