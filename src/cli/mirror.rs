//! `nexus mapping …`, `nexus alias …`, `nexus identity …`, `nexus channel list`.

use anyhow::bail;
use clap::{Args, Subcommand};
use nexus_proto::{AgentId, ClickUpListId, ClickUpUserId, SlackChannelId, SlackUserId, TenantId};
use uuid::Uuid;

use super::{print_line, print_lines};
use crate::admin::{self, Actor, MappingSpec};
use crate::store::{ExternalUser, Store};

#[derive(Debug, Subcommand)]
pub enum MappingCmd {
    /// Map a ClickUp list to a Slack channel; prints the mapping.
    Add(MappingAdd),
    List {
        #[arg(long)]
        tenant: TenantId,
    },
    Remove {
        id: Uuid,
    },
    /// Replace the mapping's default agents and/or whether it opens threads.
    #[command(group = clap::ArgGroup::new("what").required(true).multiple(true))]
    Update {
        id: Uuid,
        /// The new default agents (all of them; repeat the flag).
        #[arg(long = "default-agent", group = "what")]
        default_agents: Vec<AgentId>,
        #[arg(long, group = "what", action = clap::ArgAction::Set)]
        open_threads: Option<bool>,
    },
}

#[derive(Debug, Args)]
pub struct MappingAdd {
    #[arg(long)]
    tenant: TenantId,
    #[arg(long)]
    clickup_list: ClickUpListId,
    #[arg(long)]
    slack_channel: SlackChannelId,
    /// Gets tasks nobody is assigned to (repeat for several agents).
    #[arg(long = "default-agent")]
    default_agents: Vec<AgentId>,
    /// Don't post new tasks in the channel to open their threads.
    #[arg(long)]
    no_open_threads: bool,
}

#[derive(Debug, Subcommand)]
pub enum AliasCmd {
    /// Create `@NAME` for these agents, or add them to it.
    Add {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        alias: String,
        #[arg(long = "agent", required = true)]
        agents: Vec<AgentId>,
    },
    List {
        #[arg(long)]
        tenant: TenantId,
    },
    Remove {
        id: Uuid,
    },
    /// Replace the alias's members.
    Set {
        id: Uuid,
        #[arg(long = "agent", required = true)]
        agents: Vec<AgentId>,
    },
}

/// One provider user: exactly one of the two flags.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct UserArg {
    #[arg(long)]
    clickup_user: Option<ClickUpUserId>,
    #[arg(long)]
    slack_user: Option<SlackUserId>,
}

impl UserArg {
    fn user(self) -> anyhow::Result<ExternalUser> {
        match (self.clickup_user, self.slack_user) {
            (Some(u), None) => Ok(ExternalUser::Clickup(u)),
            (None, Some(u)) => Ok(ExternalUser::Slack(u)),
            _ => bail!("give --clickup-user or --slack-user"),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum IdentityCmd {
    /// This ClickUp or Slack user is this agent (assignments, mentions).
    Add {
        #[arg(long)]
        agent: AgentId,
        #[command(flatten)]
        user: UserArg,
    },
    Remove {
        #[arg(long)]
        agent: AgentId,
        #[command(flatten)]
        user: UserArg,
    },
    List {
        #[arg(long)]
        tenant: TenantId,
    },
    /// Give the user to another agent of the same tenant.
    Move {
        /// The agent that gets the user.
        #[arg(long)]
        agent: AgentId,
        #[command(flatten)]
        user: UserArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelCmd {
    /// Slack channels created since the Slack source was added, and whether they are mapped.
    List {
        #[arg(long)]
        tenant: TenantId,
    },
}

pub async fn mapping(store: &Store, cmd: MappingCmd) -> anyhow::Result<()> {
    match cmd {
        MappingCmd::Add(a) => {
            let spec = MappingSpec {
                tenant: a.tenant,
                clickup_list: a.clickup_list,
                slack_channel: a.slack_channel,
                default_agents: a.default_agents,
                open_threads: !a.no_open_threads,
            };
            print_line(&admin::add_mapping(store, &Actor::Cli, spec).await?)
        }
        MappingCmd::List { tenant } => {
            store.get_tenant(tenant).await?;
            print_lines(&store.list_mappings(tenant).await?)
        }
        MappingCmd::Remove { id } => {
            let tenant = store.get_mapping(id).await?.tenant_id;
            admin::remove_mapping(store, &Actor::Cli, tenant, id).await?;
            print_line(&serde_json::json!({ "removed": id }))
        }
        MappingCmd::Update {
            id,
            default_agents,
            open_threads,
        } => {
            let tenant = store.get_mapping(id).await?.tenant_id;
            let agents = (!default_agents.is_empty()).then_some(default_agents);
            let cli = &Actor::Cli;
            print_line(&admin::update_mapping(store, cli, tenant, id, agents, open_threads).await?)
        }
    }
}

pub async fn alias(store: &Store, cmd: AliasCmd) -> anyhow::Result<()> {
    match cmd {
        AliasCmd::Add {
            tenant,
            alias,
            agents,
        } => print_line(&admin::add_alias(store, &Actor::Cli, tenant, &alias, &agents).await?),
        AliasCmd::List { tenant } => {
            store.get_tenant(tenant).await?;
            print_lines(&store.list_aliases(tenant).await?)
        }
        AliasCmd::Remove { id } => {
            let tenant = store.get_alias(id).await?.tenant_id;
            admin::remove_alias(store, &Actor::Cli, tenant, id).await?;
            print_line(&serde_json::json!({ "removed": id }))
        }
        AliasCmd::Set { id, agents } => {
            let tenant = store.get_alias(id).await?.tenant_id;
            print_line(&admin::set_alias_agents(store, &Actor::Cli, tenant, id, &agents).await?)
        }
    }
}

pub async fn identity(store: &Store, cmd: IdentityCmd) -> anyhow::Result<()> {
    match cmd {
        IdentityCmd::Add { agent, user } => {
            print_line(&admin::add_identity(store, &Actor::Cli, agent, user.user()?).await?)
        }
        IdentityCmd::Remove { agent, user } => {
            let user = user.user()?;
            let tenant = store.get_agent(agent).await?.tenant_id;
            admin::remove_identity(store, &Actor::Cli, tenant, user.clone(), Some(agent)).await?;
            print_line(
                &serde_json::json!({ "removed": { "agent_id": agent, "provider": user.provider(), "external_user_id": user.as_str() } }),
            )
        }
        IdentityCmd::Move { agent, user } => {
            let tenant = store.get_agent(agent).await?.tenant_id;
            let user = user.user()?;
            print_line(&admin::move_identity(store, &Actor::Cli, tenant, user, agent).await?)
        }
        IdentityCmd::List { tenant } => {
            store.get_tenant(tenant).await?;
            print_lines(&store.list_identities(tenant).await?)
        }
    }
}

pub async fn channel(store: &Store, cmd: ChannelCmd) -> anyhow::Result<()> {
    match cmd {
        ChannelCmd::List { tenant } => {
            store.get_tenant(tenant).await?;
            print_lines(&store.list_channels(tenant).await?)
        }
    }
}
