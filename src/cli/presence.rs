//! `nexus presence list --tenant ID`: who is online, the view of
//! `GET /api/tenants/{id}/agents/online`, one JSON object per line.

use anyhow::{Context, bail};
use clap::Subcommand;
use nexus_proto::TenantId;

use super::print_lines;
use crate::admin;
use crate::redis::Redis;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum PresenceCmd {
    /// The tenant's online agents (cluster profile: read from Redis).
    List {
        #[arg(long)]
        tenant: TenantId,
        /// The cluster's Redis.
        #[arg(long, env = "REDIS_URL", hide_env_values = true)]
        redis_url: Option<String>,
    },
}

pub async fn presence(store: &Store, cmd: PresenceCmd) -> anyhow::Result<()> {
    let PresenceCmd::List { tenant, redis_url } = cmd;
    store.get_tenant(tenant).await?;
    let Some(url) = redis_url else {
        bail!(
            "presence lives inside the running node in the embedded profile: ask it with \
             GET /api/tenants/{tenant}/agents/online, or set REDIS_URL (cluster profile)"
        );
    };
    let redis = Redis::connect(&url, "cli")
        .await
        .context("cannot reach Redis (REDIS_URL)")?;
    let entries = crate::presence::online_in(&redis, tenant).await;
    redis.quit().await;
    print_lines(&admin::online_agents(store, tenant, entries?).await?)
}
