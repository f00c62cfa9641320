//! A Nexus node: find or build the binary, start it in a temp directory,
//! provision tenants, agents and an operator key with its CLI.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::pin::{self, CpuList};
use crate::proc::{Tail, drain, workspace_root};

/// `NEXUS_BIN`, else `$CARGO_TARGET_DIR/release/nexus` (default
/// `<workspace>/target`), else builds it there.
pub async fn locate_bin() -> Result<PathBuf> {
    if let Ok(bin) = std::env::var("NEXUS_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let bin = target.join("release/nexus");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!("building the node: cargo build --release -p nexus");
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "nexus"])
        .current_dir(workspace_root())
        .status()
        .await
        .context("running cargo build")?;
    if !status.success() || !bin.exists() {
        bail!("cargo build --release -p nexus failed ({status})");
    }
    Ok(bin)
}

/// Where the CLI and the node find their data.
#[derive(Clone)]
pub struct NodeEnv {
    pub bin: PathBuf,
    pub database_url: String,
    pub jwt_secret: String,
    /// `NEXUS_SECRETS_KEY` (PostgreSQL keeps no key file of its own); `None`: the key
    /// file beside a SQLite database, or whatever the environment gives.
    pub secrets_key: Option<String>,
    /// Where the node reads ClickUp tasks (`--via clickup` points it at a fake).
    pub clickup_api_url: Option<String>,
    /// `--node-cpus`: `nexus serve` runs under `taskset -c` on these.
    pub node_cpus: Option<CpuList>,
    /// Where CLI runs (provisioning) go; `None`: inherited from the tool.
    pub cli_cpus: Option<CpuList>,
}

impl NodeEnv {
    fn command(&self, cpus: Option<&CpuList>) -> Command {
        let mut cmd = pin::command(&self.bin, cpus);
        cmd.env("DATABASE_URL", &self.database_url)
            .env("NEXUS_JWT_SECRET", &self.jwt_secret)
            .env("NEXUS_LOG_FORMAT", "json")
            .kill_on_drop(true);
        if let Some(url) = &self.clickup_api_url {
            cmd.env("NEXUS_CLICKUP_API_URL", url);
        }
        if let Some(key) = &self.secrets_key {
            cmd.env("NEXUS_SECRETS_KEY", key);
        }
        cmd
    }

    /// Runs one CLI command; returns its stdout JSON lines.
    pub async fn cli(&self, args: &[&str]) -> Result<Vec<Value>> {
        let out = self
            .command(self.cli_cpus.as_ref())
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .await
            .with_context(|| format!("running nexus {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "nexus {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("CLI printed {l:?}")))
            .collect()
    }

    /// `nexus serve --listen 127.0.0.1:0` with `extra_env` (a cluster node's
    /// Redis and id); returns the child, its address and the tail of its log.
    pub async fn serve(&self, extra_env: &[(&str, &str)]) -> Result<(Child, String, Tail)> {
        let mut child = self
            .command(self.node_cpus.as_ref())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .envs(extra_env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let tail = Tail::default();
        let (tx, rx) = oneshot::channel();
        let stderr = child.stderr.take().context("no stderr pipe")?;
        drain(stderr, tail.clone(), listening_addr, Some(tx));
        match tokio::time::timeout(Duration::from_secs(60), rx).await {
            Ok(Ok(addr)) => Ok((child, addr, tail)),
            _ => {
                let _ = child.kill().await;
                bail!(
                    "the node did not report `nexus listening`:\n{}",
                    tail.text()
                )
            }
        }
    }
}

/// The `addr` of the `nexus listening` log line.
pub fn listening_addr(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields").unwrap_or(&v);
    let message = fields.get("message").or_else(|| v.get("message"))?;
    if message.as_str()? != "nexus listening" {
        return None;
    }
    Some(
        fields
            .get("addr")
            .or_else(|| v.get("addr"))?
            .as_str()?
            .to_owned(),
    )
}

/// What provisioning made: one tenant, its agents, an operator key.
pub struct Provisioned {
    pub tenant_id: String,
    /// `(agent id, client id)`.
    pub agents: Vec<(String, String)>,
    pub operator_key: String,
    pub took: Duration,
}

pub async fn provision(env: &NodeEnv, n: usize) -> Result<Provisioned> {
    let started = Instant::now();
    let name = format!("lt-{}", uuid::Uuid::new_v4().simple());
    let tenant = env.cli(&["tenant", "create", "--name", &name]).await?;
    let tenant_id = str_field(tenant.first(), "id")?;
    // The load test measures the node, not a tier's quotas: `enterprise` has none.
    env.cli(&["tenant", "update", &tenant_id, "--tier", "enterprise"])
        .await?;
    let count = n.to_string();
    let rows = env
        .cli(&[
            "agent",
            "create",
            "--tenant",
            &tenant_id,
            "--name-prefix",
            "lt-",
            "--count",
            &count,
        ])
        .await?;
    if rows.len() != n {
        bail!("asked for {n} agents, the CLI printed {}", rows.len());
    }
    let agents = rows
        .iter()
        .map(|r| Ok((str_field(Some(r), "id")?, str_field(Some(r), "client_id")?)))
        .collect::<Result<Vec<_>>>()?;
    let key = env
        .cli(&[
            "operator-key",
            "create",
            "--name",
            &name,
            "--scopes",
            "read,write,admin",
        ])
        .await?;
    Ok(Provisioned {
        tenant_id,
        agents,
        operator_key: str_field(key.first(), "key")?,
        took: started.elapsed(),
    })
}

fn str_field(row: Option<&Value>, field: &str) -> Result<String> {
    row.and_then(|r| r.get(field))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("CLI output without `{field}`: {row:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_listening_line() {
        let line = r#"{"timestamp":"…","level":"INFO","fields":{"message":"nexus listening","addr":"127.0.0.1:4242"},"target":"nexus"}"#;
        assert_eq!(listening_addr(line).as_deref(), Some("127.0.0.1:4242"));
        let flat = r#"{"message":"nexus listening","addr":"127.0.0.1:1"}"#;
        assert_eq!(listening_addr(flat).as_deref(), Some("127.0.0.1:1"));
        assert_eq!(listening_addr(r#"{"fields":{"message":"other"}}"#), None);
        assert_eq!(listening_addr("not json"), None);
    }
}
