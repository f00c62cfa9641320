//! `nexus source …` and `nexus jobs …`.

use clap::{Args, Subcommand};
use nexus_proto::{AgentId, EventType, TenantId};
use uuid::Uuid;

use super::{print_line, print_lines, stdin_secrets};
use crate::admin::{self, Actor, SourceSpec};
use crate::queue::ops;
use crate::store::{JobFilter, JobStatus, Secret, SourceKind, Store};

#[derive(Debug, Subcommand)]
pub enum SourceCmd {
    /// Register a webhook source; prints its id and its own endpoint (`url_path`; a put.io
    /// source's `callback_path`, with its token, is printed this once). Each secret flag
    /// also reads its environment variable, or stdin when given as `-`.
    Add(Box<SourceAdd>),
    List {
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    Remove {
        id: Uuid,
    },
    /// Replace the signing secret (the old one stays accepted for `--grace`) and/or the
    /// API token. Each secret flag also reads stdin when given as `-`.
    #[command(group = clap::ArgGroup::new("what").required(true).multiple(true))]
    Rotate {
        id: Uuid,
        #[arg(
            long,
            group = "what",
            env = "NEXUS_SOURCE_SECRET",
            hide_env_values = true
        )]
        secret: Option<Secret>,
        #[arg(
            long,
            group = "what",
            env = "NEXUS_SOURCE_API_TOKEN",
            hide_env_values = true
        )]
        api_token: Option<Secret>,
        /// How long the replaced signing secret stays accepted (e.g. 1h; at most 7 days).
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
    },
}

#[derive(Debug, Args)]
pub struct SourceAdd {
    #[arg(long)]
    tenant: TenantId,
    #[arg(long, value_enum)]
    kind: SourceKind,
    /// Slack: the workspace's team id.
    #[arg(long, required_if_eq("kind", "slack"))]
    team_id: Option<String>,
    /// Slack: the app's signing secret.
    #[arg(
        long,
        env = "NEXUS_SLACK_SIGNING_SECRET",
        hide_env_values = true,
        required_if_eq("kind", "slack")
    )]
    signing_secret: Option<Secret>,
    /// Slack: a bot token for posting.
    #[arg(long, env = "NEXUS_SLACK_BOT_TOKEN", hide_env_values = true)]
    bot_token: Option<Secret>,
    /// Slack: the bot's own user id (its messages are ignored).
    #[arg(long)]
    bot_user: Option<String>,
    /// ClickUp: the webhook id.
    #[arg(long, required_if_eq("kind", "clickup"))]
    webhook_id: Option<String>,
    /// ClickUp: the webhook's secret; ingest: the HMAC key / bearer token.
    #[arg(long, env = "NEXUS_SOURCE_SECRET", hide_env_values = true)]
    secret: Option<Secret>,
    /// ClickUp: an API token for reading tasks and commenting.
    #[arg(long, env = "NEXUS_CLICKUP_API_TOKEN", hide_env_values = true)]
    api_token: Option<Secret>,
    /// Ingest: the source's name.
    #[arg(long, required_if_eq("kind", "ingest"))]
    name: Option<String>,
    /// Ingest, put.io: deliver to this agent…
    #[arg(long, visible_alias = "agent")]
    to_agent: Option<AgentId>,
    /// …or to every member of this alias.
    #[arg(long, visible_alias = "alias")]
    to_alias: Option<String>,
    /// Ingest: the event type delivered (wake_up or context_update).
    #[arg(long)]
    event_type: Option<EventType>,
}

#[derive(Debug, Args)]
pub struct JobFilterArgs {
    #[arg(long, value_enum)]
    status: Option<JobStatus>,
    /// The source kind: slack, clickup, ingest, putio.
    #[arg(long)]
    source: Option<String>,
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    tenant: Option<TenantId>,
}

impl JobFilterArgs {
    fn filter(&self) -> JobFilter {
        JobFilter {
            status: self.status,
            source: self.source.clone(),
            kind: self.kind.clone(),
            tenant: self.tenant,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    /// Jobs, newest first, one JSON object per line; `--cursor` pages on.
    List {
        #[command(flatten)]
        filter: JobFilterArgs,
        #[arg(long)]
        cursor: Option<Uuid>,
        /// 1–500.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
    /// One job with its payload and every attempt's error.
    Show {
        id: Uuid,
    },
    /// Put finished jobs back in the queue: one by id, or all matching the filter
    /// (dead ones unless `--status done`).
    Replay {
        id: Option<Uuid>,
        #[command(flatten)]
        filter: JobFilterArgs,
    },
    Delete {
        id: Uuid,
    },
    /// Cancel a queued job: it never runs (a running or finished one is refused).
    Cancel {
        id: Uuid,
    },
    /// Move a queued job's next run.
    Reschedule {
        id: Uuid,
        /// When (RFC 3339, e.g. 2030-01-01T00:00:00Z).
        #[arg(long)]
        run_at: chrono::DateTime<chrono::FixedOffset>,
    },
    /// Counts per status, the oldest queued job's age, finished jobs by reason.
    Stats {
        #[arg(long)]
        tenant: Option<TenantId>,
    },
}

pub async fn source(store: &Store, cmd: SourceCmd) -> anyhow::Result<()> {
    match cmd {
        SourceCmd::Add(a) => {
            let a = *a;
            let [signing_secret, bot_token, secret, api_token] =
                stdin_secrets([a.signing_secret, a.bot_token, a.secret, a.api_token])?;
            let (external_id, secret) = match a.kind {
                SourceKind::Slack => (a.team_id, signing_secret),
                SourceKind::Clickup => (a.webhook_id, secret),
                SourceKind::Ingest => (a.name, secret),
                SourceKind::Putio => (None, secret),
            };
            if a.kind != SourceKind::Putio {
                anyhow::ensure!(external_id.is_some(), "missing the source's id");
                anyhow::ensure!(secret.is_some(), "missing the source's secret");
            }
            let spec = SourceSpec {
                tenant: a.tenant,
                kind: a.kind,
                external_id,
                secret: secret.map(|s| s.expose().to_owned()),
                api_token: api_token.or(bot_token).map(|t| t.expose().to_owned()),
                bot_user: a.bot_user,
                to_agent: a.to_agent,
                to_alias: a.to_alias,
                event: a.event_type,
            };
            print_line(&admin::add_source(store, &Actor::Cli, spec).await?)
        }
        SourceCmd::List { tenant } => print_lines(&store.list_sources(None, tenant).await?),
        SourceCmd::Remove { id } => {
            admin::remove_source(store, &Actor::Cli, id).await?;
            print_line(&serde_json::json!({ "removed": id }))
        }
        SourceCmd::Rotate {
            id,
            secret,
            api_token,
            grace,
        } => {
            let [secret, api_token] = stdin_secrets([secret, api_token])?;
            let now = crate::time::now_ms();
            let cli = &Actor::Cli;
            print_line(&admin::rotate_source(store, cli, id, secret, api_token, grace, now).await?)
        }
    }
}

pub async fn jobs(store: &Store, cmd: JobsCmd) -> anyhow::Result<()> {
    match cmd {
        JobsCmd::List {
            filter,
            cursor,
            limit,
        } => {
            let page = ops::list(store, &filter.filter(), cursor, limit).await?;
            print_lines(&page.jobs)?;
            if let Some(next) = page.next_cursor {
                eprintln!("more: --cursor {next}");
            }
            Ok(())
        }
        JobsCmd::Show { id } => print_line(&ops::show(store, id).await?),
        JobsCmd::Replay { id, filter } => {
            let mut f = filter.filter();
            if id.is_none() && f.status.is_none() {
                f.status = Some(JobStatus::Dead);
            }
            let n = admin::replay_jobs(store, &Actor::Cli, None, &f, id).await?;
            print_line(&serde_json::json!({ "replayed": n }))
        }
        JobsCmd::Delete { id } => {
            let job = ops::show(store, id).await?.job;
            admin::delete_job(store, &Actor::Cli, &job).await?;
            print_line(&serde_json::json!({ "deleted": id }))
        }
        JobsCmd::Cancel { id } => {
            let job = ops::show(store, id).await?.job;
            print_line(&admin::cancel_job(store, &Actor::Cli, &job).await?)
        }
        JobsCmd::Reschedule { id, run_at } => {
            let job = ops::show(store, id).await?.job;
            let at = run_at.timestamp_millis();
            print_line(&admin::reschedule_job(store, &Actor::Cli, &job, at).await?)
        }
        JobsCmd::Stats { tenant } => {
            let filter = JobFilter {
                tenant,
                ..JobFilter::default()
            };
            print_line(&ops::stats(store, &filter, crate::time::now_ms()).await?)
        }
    }
}
