//! `nexus alert add|list|remove`: cost alerts (see the README's "Sessions and usage").

use clap::Subcommand;
use nexus_proto::{AgentId, TenantId};
use uuid::Uuid;

use super::{print_line, print_lines};
use crate::admin::{self, Actor, AlertSpec};
use crate::store::{AlertPeriod, Store};

#[derive(Debug, Subcommand)]
pub enum AlertCmd {
    /// Alert once per period when the tenant's (or one agent's) spend reaches a
    /// threshold; prints the alert with its webhook signing secret (shown once).
    Add {
        #[arg(long)]
        tenant: TenantId,
        /// Only this agent's spend.
        #[arg(long)]
        agent: Option<AgentId>,
        /// `day` or `month` (UTC).
        #[arg(long, value_parser = period)]
        period: AlertPeriod,
        #[arg(long)]
        threshold_usd: f64,
        /// Receives a signed POST.
        #[arg(long)]
        webhook_url: Option<String>,
        /// Gets a message through the tenant's Slack source.
        #[arg(long)]
        slack_channel: Option<String>,
    },
    List {
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    Remove {
        id: Uuid,
    },
}

fn period(s: &str) -> Result<AlertPeriod, String> {
    match s {
        "day" => Ok(AlertPeriod::Day),
        "month" => Ok(AlertPeriod::Month),
        _ => Err(format!("{s:?}: expected day or month")),
    }
}

pub async fn alert(store: &Store, cmd: AlertCmd) -> anyhow::Result<()> {
    match cmd {
        AlertCmd::Add {
            tenant,
            agent,
            period,
            threshold_usd,
            webhook_url,
            slack_channel,
        } => {
            let spec = AlertSpec {
                tenant,
                agent,
                period,
                threshold_usd,
                webhook_url,
                slack_channel,
            };
            print_line(&admin::add_alert(store, &Actor::Cli, spec).await?)
        }
        AlertCmd::List { tenant } => print_lines(&store.list_alerts(tenant).await?),
        AlertCmd::Remove { id } => {
            admin::remove_alert(store, &Actor::Cli, id, None).await?;
            print_line(&serde_json::json!({ "removed": id }))
        }
    }
}
