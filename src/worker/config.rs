//! The worker's settings: flags, then environment variables, then the TOML file named
//! by `--config` (`NEXUS_WORKER_CONFIG`), then defaults — the first that sets a value
//! wins. Credentials come from `NEXUS_CLIENT_ID` / `NEXUS_CLIENT_SECRET` (or the file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use super::client::Credentials;
use super::scan::SessionGlob;
use super::state::RetryPolicy;
use super::transcript::FORMATS;
use crate::store::Secret;

fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// Settings every `nexus worker` command reads.
#[derive(Debug, Default, Args)]
pub struct CommonArgs {
    /// TOML file with any of these settings (flags and the environment win over it).
    #[arg(long, env = "NEXUS_WORKER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The node's base URL (`https://nexus.example.com`).
    #[arg(long, env = "NEXUS_URL")]
    pub url: Option<String>,
    /// Where the worker keeps what it uploaded [default: $STATE_DIRECTORY/state.json,
    /// else ~/.local/state/nexus-worker/state.json].
    #[arg(long, env = "NEXUS_WORKER_STATE_FILE")]
    pub state_file: Option<PathBuf>,
}

/// Settings of `nexus worker run` and `check`.
#[derive(Debug, Default, Args)]
pub struct SessionArgs {
    /// Session files to upload (a glob; `**` for any depth; repeat or comma-separate).
    #[arg(
        long = "sessions",
        env = "NEXUS_WORKER_SESSIONS",
        value_delimiter = ','
    )]
    pub sessions: Vec<String>,
    /// Their format: claude-code, plain [default: claude-code].
    #[arg(long, env = "NEXUS_WORKER_FORMAT")]
    pub format: Option<String>,
    /// A session is finished when its file was not written for this long (or `<file>.done` exists) [default: 5m].
    #[arg(long, env = "NEXUS_WORKER_QUIET_PERIOD", value_parser = duration)]
    pub quiet_period: Option<Duration>,
}

/// The TOML file: the same settings, by the flags' names with `_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub state_file: Option<PathBuf>,
    #[serde(default)]
    pub sessions: Vec<FileGlob>,
    pub quiet_period: Option<String>,
    pub scan_interval: Option<String>,
    pub concurrency: Option<usize>,
    pub backfill_rate: Option<f64>,
    pub max_attempts: Option<u32>,
    pub retry_base: Option<String>,
    pub retry_cap: Option<String>,
    pub alert_after: Option<u32>,
    pub heartbeat_interval: Option<String>,
    pub exec: Option<String>,
    pub exec_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGlob {
    pub glob: String,
    pub format: Option<String>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the worker config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("in the worker config {}", path.display()))
    }

    /// A duration setting: `flag` if given, else the file's, else `default`.
    pub fn duration_or(
        &self,
        flag: Option<Duration>,
        file: &Option<String>,
        name: &str,
        default: Duration,
    ) -> anyhow::Result<Duration> {
        if let Some(d) = flag {
            return Ok(d);
        }
        match file {
            Some(text) => humantime::parse_duration(text).with_context(|| {
                format!("{name} in the worker config: {text:?} is not a duration")
            }),
            None => Ok(default),
        }
    }
}

/// The node and the agent's credentials.
pub fn node_settings(
    common: &CommonArgs,
    file: &FileConfig,
) -> anyhow::Result<(String, Credentials)> {
    let url = common
        .url
        .clone()
        .or_else(|| file.url.clone())
        .context("give the node's URL: --url, NEXUS_URL or `url` in the config")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("the node's URL must start with http:// or https://, got {url:?}");
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let client_id = env("NEXUS_CLIENT_ID")
        .or_else(|| file.client_id.clone())
        .context("set NEXUS_CLIENT_ID (or `client_id` in the config) to the agent's client id")?;
    let secret = env("NEXUS_CLIENT_SECRET")
        .or_else(|| file.client_secret.clone())
        .context("set NEXUS_CLIENT_SECRET (or `client_secret` in the config)")?;
    Ok((
        url,
        Credentials {
            client_id,
            client_secret: Secret::new(secret),
        },
    ))
}

pub fn state_file(common: &CommonArgs, file: &FileConfig) -> anyhow::Result<PathBuf> {
    if let Some(path) = common
        .state_file
        .clone()
        .or_else(|| file.state_file.clone())
    {
        return Ok(path);
    }
    // systemd's `StateDirectory=` sets STATE_DIRECTORY.
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        return Ok(PathBuf::from(dir).join("state.json"));
    }
    let home = std::env::var_os("HOME").context("give --state-file: HOME is not set")?;
    Ok(PathBuf::from(home).join(".local/state/nexus-worker/state.json"))
}

/// The session globs with their formats (flags replace the file's list).
pub fn globs(args: &SessionArgs, file: &FileConfig) -> anyhow::Result<Vec<SessionGlob>> {
    let default_format = args.format.as_deref().unwrap_or("claude-code");
    let listed: Vec<(String, String)> = match args.sessions.is_empty() {
        false => args
            .sessions
            .iter()
            .map(|g| (g.clone(), default_format.to_owned()))
            .collect(),
        true => file
            .sessions
            .iter()
            .map(|g| {
                (
                    g.glob.clone(),
                    g.format.clone().unwrap_or(default_format.to_owned()),
                )
            })
            .collect(),
    };
    if listed.is_empty() {
        bail!(
            "give the session files to upload: --sessions GLOB, NEXUS_WORKER_SESSIONS or [[sessions]] in the config"
        );
    }
    listed
        .into_iter()
        .map(|(glob, format)| {
            let known = FORMATS.iter().find(|f| **f == format).with_context(|| {
                format!(
                    "unknown session format {format:?}: use one of {}",
                    FORMATS.join(", ")
                )
            })?;
            glob::Pattern::new(&glob).with_context(|| format!("bad glob {glob:?}"))?;
            Ok(SessionGlob {
                glob,
                format: known,
            })
        })
        .collect()
}

pub fn retry_policy(
    file: &FileConfig,
    base: Option<Duration>,
    cap: Option<Duration>,
    max_attempts: Option<u32>,
) -> anyhow::Result<RetryPolicy> {
    let policy = RetryPolicy {
        base: file.duration_or(base, &file.retry_base, "retry_base", Duration::from_secs(5))?,
        cap: file.duration_or(cap, &file.retry_cap, "retry_cap", Duration::from_secs(3600))?,
        max_attempts: max_attempts.or(file.max_attempts).unwrap_or(8),
    };
    if policy.max_attempts == 0 || policy.base.is_zero() || policy.cap < policy.base {
        bail!("retries need max_attempts ≥ 1 and 0 < retry_base ≤ retry_cap");
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_config_parses_and_a_typo_is_refused() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("# nexus-worker.toml")
            .expect("the README's worker config");
        let text = &readme[start..];
        let text = &text[..text.find("```").expect("end of the block")];
        let file: FileConfig = toml::from_str(text).expect("parses");
        let args = SessionArgs::default();
        assert_eq!(globs(&args, &file).expect("globs")[0].format, "claude-code");
        assert!(retry_policy(&file, None, None, None).is_ok());
        assert!(toml::from_str::<FileConfig>("quiet_periodd = \"1m\"").is_err());
    }
}
