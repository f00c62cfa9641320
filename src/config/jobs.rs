//! The job queue's and the provider APIs' options (`serve`).

use std::time::Duration;

use clap::Args;

use super::duration;

/// `KIND=N` with N ≥ 1, for `--queue-max-attempts-for`.
fn kind_attempts(s: &str) -> Result<(String, u32), String> {
    let (kind, n) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KIND=N, got {s:?}"))?;
    match n.trim().parse::<u32>() {
        Ok(n) if n >= 1 && !kind.trim().is_empty() => Ok((kind.trim().to_owned(), n)),
        _ => Err(format!("expected KIND=N with N at least 1, got {s:?}")),
    }
}

/// The job queue (DESIGN §11).
#[derive(Debug, Clone, Args)]
pub struct QueueOpts {
    /// Jobs processed at once by this node.
    #[arg(
        long = "queue-workers",
        env = "NEXUS_QUEUE_WORKERS",
        default_value_t = 16
    )]
    pub workers: usize,

    /// Attempts before a transiently failing job is dead-lettered. With the default
    /// backoff, 8 attempts retry for about 2 minutes: a provider blip is outlasted.
    #[arg(
        long = "queue-max-attempts",
        env = "NEXUS_QUEUE_MAX_ATTEMPTS",
        default_value_t = 8
    )]
    pub max_attempts: u32,

    /// Per-kind attempts overriding `--queue-max-attempts`: `KIND=N`, comma-separated or
    /// repeated (e.g. `tool.call=3`: an agent waits on a tool call, so give up sooner).
    #[arg(
        long = "queue-max-attempts-for",
        env = "NEXUS_QUEUE_MAX_ATTEMPTS_FOR",
        value_delimiter = ',',
        value_parser = kind_attempts
    )]
    pub max_attempts_for: Vec<(String, u32)>,

    /// First retry delay; doubles per attempt (with jitter).
    #[arg(long = "queue-backoff-base", env = "NEXUS_QUEUE_BACKOFF_BASE", default_value = "1s", value_parser = duration)]
    pub backoff_base: Duration,

    /// Longest retry delay.
    #[arg(long = "queue-backoff-max", env = "NEXUS_QUEUE_BACKOFF_MAX", default_value = "5m", value_parser = duration)]
    pub backoff_max: Duration,

    /// A job's lease; renewed while it runs, swept back to the queue when its worker dies.
    #[arg(long = "queue-lease", env = "NEXUS_QUEUE_LEASE", default_value = "30s", value_parser = duration)]
    pub lease: Duration,

    /// Idle workers look for due jobs at least this often (other nodes' jobs, retries).
    #[arg(long = "queue-poll", env = "NEXUS_QUEUE_POLL", default_value = "1s", value_parser = duration)]
    pub poll: Duration,

    /// A queued job older than this makes the queue "stale": a warning and a gauge.
    #[arg(long = "queue-stale-after", env = "NEXUS_QUEUE_STALE_AFTER", default_value = "5m", value_parser = duration)]
    pub stale_after: Duration,
}

/// The Slack and ClickUp APIs the mirror calls (tests point these at local fakes).
#[derive(Debug, Clone, Args)]
pub struct ProviderOpts {
    /// Base URL of the ClickUp API v2.
    #[arg(
        long = "clickup-api-url",
        env = "NEXUS_CLICKUP_API_URL",
        default_value = "https://api.clickup.com/api/v2"
    )]
    pub clickup_api_url: String,

    /// Base URL of the Slack Web API.
    #[arg(
        long = "slack-api-url",
        env = "NEXUS_SLACK_API_URL",
        default_value = "https://slack.com/api"
    )]
    pub slack_api_url: String,

    /// Longest wait for one provider API call.
    #[arg(long = "provider-timeout", env = "NEXUS_PROVIDER_TIMEOUT", default_value = "10s", value_parser = duration)]
    pub timeout: Duration,
}
