//! The host side of the worker tests: an agent's credentials, a directory of session
//! files, and the `nexus worker` binary run against a node.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::TestApp;

/// An agent the worker runs as, with an operator key to look at what it uploaded.
pub struct Host {
    pub dir: tempfile::TempDir,
    pub client_id: String,
    pub secret: String,
    pub agent_id: String,
    pub tenant_id: String,
    pub key: String,
}

impl Host {
    pub async fn new(app: &TestApp) -> Host {
        let tenant = app.tenant("acme").await;
        let agent = app.agent(tenant.id, "coder").await;
        Host {
            dir: tempfile::tempdir().expect("dir"),
            client_id: agent.agent.client_id.clone(),
            secret: agent.client_secret.clone(),
            agent_id: agent.agent.id.to_string(),
            tenant_id: tenant.id.to_string(),
            key: app.operator_key("read,write", None).await,
        }
    }

    pub fn sessions(&self) -> PathBuf {
        self.dir.path().join("projects")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state/state.json")
    }

    /// `nexus worker ARGS…` with the agent's credentials and the host's paths.
    pub fn command(&self, url: &str, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_nexus"));
        cmd.arg("worker")
            .args(args)
            .args(["--url", url])
            .arg("--state-file")
            .arg(self.state())
            .env("NEXUS_CLIENT_ID", &self.client_id)
            .env("NEXUS_CLIENT_SECRET", &self.secret)
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUST_LOG");
        cmd
    }

    pub fn run_once(&self, url: &str, extra: &[&str]) -> Output {
        let glob = format!("{}/**/*.jsonl", self.sessions().display());
        let mut args = vec!["run", "--once", "--sessions", &glob, "--quiet-period", "0s"];
        args.extend_from_slice(extra);
        self.command(url, &args).output().expect("run the worker")
    }

    pub fn status(&self) -> Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nexus"))
            .args(["worker", "status", "--json", "--state-file"])
            .arg(self.state())
            .output()
            .expect("status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Session `id`'s transcript as the node streams it back.
    pub async fn transcript(&self, app: &TestApp, id: &str) -> Vec<u8> {
        let path = format!("/api/sessions/{id}/transcript");
        let resp = app
            .http
            .get(app.url(&path))
            .bearer_auth(&self.key)
            .send()
            .await;
        let body = resp.expect("transcript").bytes().await.expect("body");
        body.to_vec()
    }

    pub async fn uploaded(&self, app: &TestApp) -> Vec<Value> {
        let path = format!("/api/sessions?agent={}&limit=500", self.agent_id);
        let page = app.get_json(&path, &self.key).await;
        page["sessions"].as_array().expect("sessions").clone()
    }
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write session");
}

/// A Claude Code transcript: one response written as two lines repeating its usage.
pub fn claude_session(id: &str, day: &str) -> String {
    let line = |ts: &str, req: &str, msg: &str, model: &str, usage: Value| {
        json!({"type":"assistant","sessionId":id,"timestamp":format!("{day}T{ts}Z"),"requestId":req,
               "message":{"id":msg,"model":model,"usage":usage}})
        .to_string()
    };
    let sonnet = json!({"input_tokens":100,"output_tokens":20,"cache_read_input_tokens":1000,"cache_creation_input_tokens":50});
    [
        json!({"type":"user","sessionId":id,"timestamp":format!("{day}T10:00:00Z"),"message":{"role":"user","content":"fix the bug"}}).to_string(),
        line("10:00:05", "r1", "m1", "claude-sonnet-4-5", sonnet.clone()),
        line("10:00:06", "r1", "m1", "claude-sonnet-4-5", sonnet),
        line("10:02:00", "r2", "m2", "claude-haiku-4-5", json!({"input_tokens":7,"output_tokens":3})),
    ]
    .join("\n")
        + "\n"
}

pub fn output_text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Five and a half MiB of JSONL, not all valid UTF-8 (sent in parts, byte for byte).
pub fn big_session() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(6 << 20);
    let mut i = 0u64;
    while bytes.len() < (11 << 19) {
        let line =
            json!({"type":"user","timestamp":"2026-11-30T11:00:00Z","n":i,"text":"x".repeat(200)});
        bytes.extend_from_slice(line.to_string().as_bytes());
        bytes.push(b'\n');
        i += 1;
    }
    bytes.extend_from_slice(b"\xff\xfe not UTF-8\n");
    bytes
}

/// Polls `check` until it holds (a minute at most).
pub async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
