//! The Socket.IO baseline process (`loadtest/peers/socketio`): installed with
//! `npm ci` when needed and started on an ephemeral port. Its clients are in
//! `agents`, its framing in `wire::socketio`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::pin::{self, CpuList};
use crate::proc::{Tail, drain, workspace_root};

/// How to start one peer process.
pub struct PeerOpts<'a> {
    pub jwt_secret: &'a str,
    /// Cluster mode: `@socket.io/redis-adapter` on this Redis.
    pub redis_url: Option<&'a str>,
    /// `--node-cpus`: the same cores a Nexus node would get.
    pub cpus: Option<&'a CpuList>,
}

/// `npm ci` when needed, then `node --expose-gc server.js` on an ephemeral
/// port; returns the child, its `host:port` and the tail of its output.
pub async fn start(opts: &PeerOpts<'_>) -> Result<(Child, String, Tail)> {
    let dir = workspace_root().join("loadtest/peers/socketio");
    if !dir.join("node_modules").exists() {
        eprintln!("installing the Socket.IO peer: npm ci in {}", dir.display());
        let status = Command::new("npm")
            .arg("ci")
            .current_dir(&dir)
            .status()
            .await
            .context("running npm ci (is Node ≥ 20 installed?)")?;
        if !status.success() {
            bail!("npm ci failed in {} ({status})", dir.display());
        }
    }
    let mut cmd = pin::command("node", opts.cpus);
    if let Some(url) = opts.redis_url {
        cmd.env("REDIS_URL", url);
    }
    let mut child = cmd
        .args(["--expose-gc", "server.js"])
        .current_dir(&dir)
        .env("JWT_SECRET", opts.jwt_secret)
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (is Node ≥ 20 installed?)")?;
    let tail = Tail::default();
    let (tx, rx) = oneshot::channel();
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    drain(stdout, tail.clone(), listening, Some(tx));
    drain(stderr, tail.clone(), |_| None, None);
    match tokio::time::timeout(Duration::from_secs(30), rx).await {
        Ok(Ok(addr)) => Ok((child, addr, tail)),
        _ => {
            let _ = child.kill().await;
            bail!(
                "the Socket.IO peer did not print its address:\n{}",
                tail.text()
            )
        }
    }
}

/// The `listening` address of the peer's `{"listening":"host:port"}` line.
fn listening(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    Some(v.get("listening")?.as_str()?.to_owned())
}
