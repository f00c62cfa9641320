//! The `nexus` command line. Create commands print exactly one JSON object per
//! line on stdout; errors go to stderr with a non-zero exit status.

mod alerts;
mod mirror;
mod presence;
mod putio;
mod queue;
mod secrets;
mod tenants;
mod usage;

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use nexus_proto::{AgentId, ClickUpUserId, SlackUserId, TenantId};
use serde::Serialize;

use crate::admin::{self, Actor, AgentSpec};
use crate::app::{self, Application};
use crate::auth::Authenticator;
use crate::config::{
    Config, GlobalOpts, Prices, SecretsKeyOpts, ServeOpts, Tiers, jwt_secret_from_env,
};
use crate::store::{AgentChange, AgentStatus, Scopes, Secret, Store};

#[derive(Debug, Parser)]
#[command(
    name = "nexus",
    version,
    about = "Real-time coordination hub for AI agents"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: apply migrations, then serve HTTP and WebSocket until SIGTERM/SIGINT.
    Serve(Box<ServeOpts>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Tenants: create, list, set (tool policy), update, suspend, resume, delete.
    #[command(subcommand)]
    Tenant(tenants::TenantCmd),
    /// Agents: create (one or in bulk), list, update, disable, enable, rotate-secret.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Issue an access token, by client credentials or (operators) for an agent id.
    Token(TokenArgs),
    /// Operator API keys.
    #[command(subcommand, name = "operator-key")]
    OperatorKey(OperatorKeyCmd),
    /// Webhook sources (Slack, ClickUp, generic ingest, put.io): add, list, remove.
    #[command(subcommand)]
    Source(queue::SourceCmd),
    /// put.io: register a transfer whose completion callback goes to a put.io source.
    #[command(subcommand)]
    Putio(putio::PutioCmd),
    /// The job queue: list, show, replay, delete, stats.
    #[command(subcommand)]
    Jobs(queue::JobsCmd),
    /// ClickUp list ↔ Slack channel mappings: add, list, remove.
    #[command(subcommand)]
    Mapping(mirror::MappingCmd),
    /// Agent aliases (`@AI_Squad`): add, list, remove.
    #[command(subcommand)]
    Alias(mirror::AliasCmd),
    /// Which ClickUp and Slack users are which agents: add, remove, list.
    #[command(subcommand)]
    Identity(mirror::IdentityCmd),
    /// Slack channels seen created (to map them).
    #[command(subcommand)]
    Channel(mirror::ChannelCmd),
    /// Who is online: list.
    #[command(subcommand)]
    Presence(presence::PresenceCmd),
    /// Cost alerts: add, list, remove.
    #[command(subcommand)]
    Alert(alerts::AlertCmd),
    /// The audit log of operator actions: list.
    #[command(subcommand)]
    Audit(tenants::AuditCmd),
    /// Secrets sealed in the database: rotate-key.
    #[command(subcommand)]
    Secrets(secrets::SecretsCmd),
    /// A tenant's token usage and its cost per day, model or agent (`--prices`).
    Usage(usage::UsageArgs),
    /// The agent-host worker: upload sessions (`run`), `status`, `check`, `pull` events.
    #[command(subcommand)]
    Worker(crate::worker::WorkerCmd),
    /// A stdio MCP server that is one agent (NEXUS_URL, NEXUS_CLIENT_ID, NEXUS_CLIENT_SECRET):
    /// events, acks, status and the node's tools as MCP tools, open tasks as resources.
    Mcp,
}

#[derive(Debug, Subcommand)]
pub enum AgentCmd {
    /// Create one agent (`--name`) or many (`--name-prefix P --count N`, named P1…PN).
    Create(AgentCreate),
    List {
        #[arg(long)]
        tenant: TenantId,
    },
    /// Rename the agent or set its ClickUp and Slack users.
    #[command(group = clap::ArgGroup::new("fields").required(true).multiple(true))]
    Update {
        id: AgentId,
        #[arg(long, group = "fields")]
        name: Option<String>,
        #[arg(long, group = "fields")]
        clickup_user: Option<ClickUpUserId>,
        #[arg(long, group = "fields")]
        slack_user: Option<SlackUserId>,
    },
    Disable {
        id: AgentId,
    },
    Enable {
        id: AgentId,
    },
    /// Replace the agent's client secret; prints the new one. Existing tokens stay valid until they expire.
    RotateSecret {
        id: AgentId,
    },
    /// Refuse every token issued to the agent before now; its live sessions holding
    /// one are closed with 4001 (within --reconcile-interval).
    RevokeTokens {
        id: AgentId,
    },
}

#[derive(Debug, Args)]
pub struct AgentCreate {
    #[arg(long)]
    tenant: TenantId,
    #[arg(
        long,
        required_unless_present = "name_prefix",
        conflicts_with = "name_prefix"
    )]
    name: Option<String>,
    #[arg(long, requires = "count")]
    name_prefix: Option<String>,
    #[arg(long, requires = "name_prefix", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    count: Option<u32>,
    /// The agent's ClickUp user id (resolves task assignees).
    #[arg(long, conflicts_with = "name_prefix")]
    clickup_user: Option<ClickUpUserId>,
    /// The agent's Slack user id (resolves mentions).
    #[arg(long, conflicts_with = "name_prefix")]
    slack_user: Option<SlackUserId>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[arg(long, requires = "client_secret", conflicts_with = "agent")]
    client_id: Option<String>,
    /// The client secret (`-`: read from stdin).
    #[arg(long, env = "NEXUS_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<Secret>,
    /// Mint a token for this agent without its secret (operators only: needs database access).
    #[arg(long, required_unless_present = "client_id")]
    agent: Option<AgentId>,
    /// Token lifetime in seconds, at most 86400 (24 h): a token cannot be recalled
    /// before it expires, so none lives long.
    #[arg(long, env = "NEXUS_TOKEN_TTL_S", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=crate::config::MAX_TOKEN_TTL_S))]
    ttl_s: u64,
}

#[derive(Debug, Subcommand)]
pub enum OperatorKeyCmd {
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: read, write, admin.
        #[arg(long)]
        scopes: Scopes,
        /// Bind the key to one tenant; global when omitted.
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    /// Live keys (never the keys themselves: only their hashes are stored).
    List {
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    /// Revoke a key: refused by every node within `--cache-ttl`.
    Revoke { id: uuid::Uuid },
}

pub(crate) fn print_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

pub(crate) fn print_lines<T: Serialize>(values: &[T]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for v in values {
        serde_json::to_writer(&mut out, v)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// The tiers `--tiers` defines (or the built-in ones), as the node would apply them.
fn tiers(global: &GlobalOpts) -> anyhow::Result<Tiers> {
    Ok(Tiers::load(global.tiers.as_deref())?)
}

async fn open_store(global: &GlobalOpts) -> anyhow::Result<Store> {
    let store = Store::connect(&global.database_url)
        .await
        .context("cannot open the database")?;
    store.migrate().await.context("cannot apply migrations")?;
    Ok(store)
}

/// [`open_store`], with the key that opens its sealed secrets, for commands that read or
/// write them; also the key file used (`None`: the key is in `NEXUS_SECRETS_KEY`).
async fn open_sealed_store(global: &GlobalOpts) -> anyhow::Result<(Store, Option<PathBuf>)> {
    let mut store = open_store(global).await?;
    let opts = SecretsKeyOpts::new(global);
    let file = app::open_secrets(&mut store, &global.database_url, &opts).await?;
    Ok((store, file))
}

/// Secret flags given as `-` are read from stdin (one line), which keeps them out of
/// argv and the environment; one per command, so which is which stays plain.
pub(crate) fn stdin_secrets<const N: usize>(
    mut values: [Option<Secret>; N],
) -> anyhow::Result<[Option<Secret>; N]> {
    let mut dashes = values
        .iter_mut()
        .filter(|v| v.as_ref().is_some_and(|s| s.expose() == "-"));
    if let Some(slot) = dashes.next() {
        if dashes.next().is_some() {
            bail!("only one secret can be read from stdin (`-`) per command");
        }
        *slot = Some(read_stdin_line("the secret")?);
    }
    Ok(values)
}

/// One line of stdin, without its line ending; an empty one is an error naming `what`.
pub(crate) fn read_stdin_line(what: &str) -> anyhow::Result<Secret> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read stdin")?;
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        bail!("expected {what} on stdin, got an empty line");
    }
    Ok(Secret::new(line))
}

pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Worker(cmd) => return crate::worker::run(cmd).await,
        Command::Mcp => crate::worker::mcp::run().await?,
        Command::Serve(opts) => {
            let app = Application::build(Config::new(global, *opts)?).await?;
            let stop = app.shutdown_token();
            tokio::spawn(async move {
                app::shutdown_signal().await;
                tracing::info!("shutdown requested");
                stop.cancel();
            });
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            open_store(&global).await?;
            print_line(&serde_json::json!({"migrated": true}))?;
        }
        Command::Tenant(cmd) => {
            tenants::tenant(&open_store(&global).await?, &tiers(&global)?, cmd).await?
        }
        Command::Alert(cmd) => alerts::alert(&open_sealed_store(&global).await?.0, cmd).await?,
        Command::Audit(cmd) => tenants::audit(&open_store(&global).await?, cmd).await?,
        Command::Agent(cmd) => agent(&open_store(&global).await?, &tiers(&global)?, cmd).await?,
        Command::Token(args) => token(&open_sealed_store(&global).await?.0, args).await?,
        Command::Source(cmd) => queue::source(&open_sealed_store(&global).await?.0, cmd).await?,
        Command::Putio(cmd) => putio::putio(&open_sealed_store(&global).await?.0, cmd).await?,
        Command::Secrets(cmd) => secrets::secrets(&global, cmd).await?,
        Command::Usage(args) => {
            let prices = Prices::load(global.prices.as_deref())?;
            usage::usage(&open_store(&global).await?, &prices, args).await?
        }
        Command::Jobs(cmd) => queue::jobs(&open_store(&global).await?, cmd).await?,
        Command::Mapping(cmd) => mirror::mapping(&open_store(&global).await?, cmd).await?,
        Command::Alias(cmd) => mirror::alias(&open_store(&global).await?, cmd).await?,
        Command::Identity(cmd) => mirror::identity(&open_store(&global).await?, cmd).await?,
        Command::Channel(cmd) => mirror::channel(&open_store(&global).await?, cmd).await?,
        Command::Presence(cmd) => presence::presence(&open_store(&global).await?, cmd).await?,
        Command::OperatorKey(OperatorKeyCmd::Create {
            name,
            scopes,
            tenant,
        }) => {
            let store = open_store(&global).await?;
            print_line(
                &admin::create_operator_key(&store, &Actor::Cli, &name, scopes, tenant).await?,
            )?;
        }
        Command::OperatorKey(OperatorKeyCmd::List { tenant }) => {
            print_lines(
                &open_store(&global)
                    .await?
                    .list_operator_keys(tenant)
                    .await?,
            )?;
        }
        Command::OperatorKey(OperatorKeyCmd::Revoke { id }) => {
            let store = open_store(&global).await?;
            print_line(&admin::revoke_operator_key(&store, &Actor::Cli, id, None).await?)?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn agent(store: &Store, tiers: &Tiers, cmd: AgentCmd) -> anyhow::Result<()> {
    let cli = &Actor::Cli;
    match cmd {
        AgentCmd::Create(c) => {
            let specs = match (c.name, c.name_prefix, c.count) {
                (Some(name), None, None) => vec![AgentSpec {
                    name,
                    clickup_user: c.clickup_user,
                    slack_user: c.slack_user,
                }],
                (None, Some(prefix), Some(count)) => (1..=count)
                    .map(|i| AgentSpec {
                        name: format!("{prefix}{i}"),
                        clickup_user: None,
                        slack_user: None,
                    })
                    .collect(),
                _ => bail!("give --name, or --name-prefix with --count"),
            };
            print_lines(&admin::create_agents(store, tiers, &Actor::Cli, c.tenant, specs).await?)?;
        }
        AgentCmd::List { tenant } => {
            store.get_tenant(tenant).await?;
            print_lines(&store.list_agents(tenant).await?)?;
        }
        AgentCmd::Update {
            id,
            name,
            clickup_user,
            slack_user,
        } => {
            let change = AgentChange {
                name,
                clickup_user: clickup_user.map(Some),
                slack_user: slack_user.map(Some),
            };
            print_line(&admin::update_agent(store, cli, id, change).await?)?
        }
        AgentCmd::Disable { id } => {
            print_line(&admin::set_agent_status(store, cli, id, AgentStatus::Disabled).await?)?
        }
        AgentCmd::Enable { id } => {
            print_line(&admin::set_agent_status(store, cli, id, AgentStatus::Active).await?)?
        }
        AgentCmd::RotateSecret { id } => print_line(&admin::rotate_secret(store, cli, id).await?)?,
        AgentCmd::RevokeTokens { id } => print_line(&admin::revoke_tokens(store, cli, id).await?)?,
    }
    Ok(())
}

#[derive(Serialize)]
struct TokenOut {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

async fn token(store: &Store, args: TokenArgs) -> anyhow::Result<()> {
    let ttl = std::time::Duration::from_secs(args.ttl_s);
    let keys = app::jwt_keys(store, jwt_secret_from_env().as_deref(), ttl).await?;
    let [client_secret] = stdin_secrets([args.client_secret])?;
    let issued = match (args.agent, args.client_id, client_secret) {
        (Some(agent), None, _) => admin::mint_token(store, &Actor::Cli, &keys, agent).await?,
        (None, Some(id), Some(secret)) => {
            let defaults = ServeOpts::defaults();
            let patience = defaults.db.request_timeout;
            let auth = Authenticator::new(
                store.clone(),
                keys,
                &defaults.auth,
                defaults.cache_ttl,
                patience,
            );
            auth.issue_for_client(&id, secret.expose(), None).await?
        }
        _ => bail!("give --client-id with --client-secret, or --agent"),
    };
    print_line(&TokenOut {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
    })
}
