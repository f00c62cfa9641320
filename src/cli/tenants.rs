//! `nexus tenant …` and `nexus audit …`.

use clap::Subcommand;
use nexus_proto::TenantId;

use super::{print_line, print_lines};
use crate::admin::{self, Actor};
use crate::config::Tiers;
use crate::store::{AuditFilter, Store, TenantChange, TenantStatus, ToolScope};

#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    Create {
        #[arg(long)]
        name: String,
    },
    List,
    /// What the tenant's agents may do with tools; takes effect within `--cache-ttl`.
    #[command(group = clap::ArgGroup::new("change").required(true).multiple(true))]
    Set {
        id: TenantId,
        /// `mapped`: only the Slack channels and ClickUp lists (and their tasks) of the
        /// tenant's mappings; `any`: whatever its tokens reach.
        #[arg(long, group = "change")]
        tool_scope: Option<ToolScope>,
        /// Post `<!channel>`, `<!here>`, `<!everyone>`, user-group and `@channel`
        /// mentions as written instead of neutralised.
        #[arg(long, group = "change", action = clap::ArgAction::Set)]
        allow_broadcasts: Option<bool>,
    },
    /// The tiers a tenant may be on, with their limits (`--tiers`, or the built-in ones).
    Tiers,
    /// Rename the tenant or change its tier.
    #[command(group = clap::ArgGroup::new("fields").required(true).multiple(true))]
    Update {
        id: TenantId,
        #[arg(long, group = "fields")]
        name: Option<String>,
        #[arg(long, group = "fields")]
        tier: Option<String>,
    },
    /// Refuse the tenant's token requests, close its sockets (4011, within
    /// `--reconcile-interval`), keep its webhooks as dead jobs (`tenant_suspended`).
    Suspend {
        id: TenantId,
    },
    /// Undo `suspend`.
    Resume {
        id: TenantId,
    },
    /// Delete the tenant with all its data (agents, inboxes, sources, jobs, mappings,
    /// aliases, identities, tasks, keys bound to it). Cannot be undone.
    Delete {
        id: TenantId,
    },
}

pub async fn tenant(store: &Store, tiers: &Tiers, cmd: TenantCmd) -> anyhow::Result<()> {
    let cli = &Actor::Cli;
    match cmd {
        TenantCmd::Create { name } => {
            print_line(&admin::create_tenant(store, tiers, cli, &name).await?)
        }
        TenantCmd::List => print_lines(&store.list_tenants().await?),
        TenantCmd::Set {
            id,
            tool_scope,
            allow_broadcasts,
        } => print_line(
            &admin::set_tenant_tools(store, cli, id, tool_scope, allow_broadcasts).await?,
        ),
        TenantCmd::Tiers => print_lines(&tiers.all().collect::<Vec<_>>()),
        TenantCmd::Update { id, name, tier } => {
            let change = TenantChange { name, tier };
            print_line(&admin::update_tenant(store, tiers, cli, id, change).await?)
        }
        TenantCmd::Suspend { id } => {
            print_line(&admin::set_tenant_status(store, cli, id, TenantStatus::Suspended).await?)
        }
        TenantCmd::Resume { id } => {
            print_line(&admin::set_tenant_status(store, cli, id, TenantStatus::Active).await?)
        }
        TenantCmd::Delete { id } => {
            admin::delete_tenant(store, cli, id).await?;
            print_line(&serde_json::json!({ "deleted": id }))
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Recorded operator actions, newest first, one JSON object per line; `--cursor`
    /// pages on.
    List {
        #[arg(long)]
        tenant: Option<TenantId>,
        /// e.g. `tenant.suspend`, `agent.disable`, `job.cancel`.
        #[arg(long)]
        action: Option<String>,
        /// From this instant (RFC 3339), inclusive.
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Until this instant (RFC 3339), exclusive.
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::FixedOffset>>,
        #[arg(long)]
        cursor: Option<uuid::Uuid>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
}

pub async fn audit(store: &Store, cmd: AuditCmd) -> anyhow::Result<()> {
    let AuditCmd::List {
        tenant,
        action,
        since,
        until,
        cursor,
        limit,
    } = cmd;
    let filter = AuditFilter {
        tenant,
        action,
        since: since.map(|t| t.timestamp_millis()),
        until: until.map(|t| t.timestamp_millis()),
    };
    let entries = store.list_audit(&filter, cursor, limit).await?;
    print_lines(&entries)?;
    if entries.len() == limit as usize
        && let Some(last) = entries.last()
    {
        eprintln!("more: --cursor {}", last.id);
    }
    Ok(())
}
