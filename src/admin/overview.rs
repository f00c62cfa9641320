//! What operators watch about a tenant: who is online with how far behind each agent's
//! inbox is, and the tenant's events and webhooks per day.

use chrono::DateTime;
use nexus_proto::TenantId;
use serde::Serialize;

use super::AdminError;
use crate::presence::PresenceEntry;
use crate::store::{DAY_MS, DayCounts, Store};

/// An online agent with its inbox position: `lag` events were committed to its inbox
/// and not yet acknowledged.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AgentPresence {
    #[serde(flatten)]
    pub entry: PresenceEntry,
    pub name: Option<String>,
    pub committed_seq: u64,
    pub acked_seq: u64,
    pub lag: u64,
}

/// The tenant's online `entries` (read from presence by the caller), named and with
/// their cursors: one query for the whole tenant, however many agents are online.
pub async fn presence(
    store: &Store,
    tenant: TenantId,
    entries: Vec<PresenceEntry>,
) -> Result<Vec<AgentPresence>, AdminError> {
    let mut known: std::collections::HashMap<_, _> = store
        .tenant_cursors(tenant)
        .await?
        .into_iter()
        .map(|a| (a.agent, a))
        .collect();
    let mut agents: Vec<AgentPresence> = entries
        .into_iter()
        .map(|entry| {
            let agent = known.remove(&entry.agent_id);
            let cursor = agent.as_ref().map(|a| a.cursor).unwrap_or_default();
            let (committed, acked) = (cursor.last_seq.get(), cursor.acked_seq.get());
            AgentPresence {
                entry,
                name: agent.map(|a| a.name),
                committed_seq: committed,
                acked_seq: acked,
                lag: committed.saturating_sub(acked),
            }
        })
        .collect();
    agents.sort_by(|a, b| {
        (&a.name, a.entry.agent_id.as_uuid()).cmp(&(&b.name, b.entry.agent_id.as_uuid()))
    });
    Ok(agents)
}

/// One UTC day of a tenant's activity.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ActivityDay {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub events: i64,
    pub webhooks: i64,
}

/// The most days [`activity`] reports.
pub const MAX_ACTIVITY_DAYS: u32 = 90;

/// The last `days` UTC days up to the one holding `now_ms`, oldest first, each present
/// (zero when nothing happened).
pub async fn activity(
    store: &Store,
    tenant: TenantId,
    days: u32,
    now_ms: i64,
) -> Result<Vec<ActivityDay>, AdminError> {
    if days == 0 || days > MAX_ACTIVITY_DAYS {
        return Err(AdminError::Invalid(format!(
            "days must be 1–{MAX_ACTIVITY_DAYS}"
        )));
    }
    store.get_tenant(tenant).await?;
    let today = now_ms.div_euclid(DAY_MS);
    let first = today - i64::from(days) + 1;
    let counts = store.tenant_activity(tenant, first * DAY_MS).await?;
    Ok((first..=today)
        .map(|day| {
            let c = counts.get(&day).copied().unwrap_or(DayCounts::default());
            ActivityDay {
                day: DateTime::from_timestamp_millis(day * DAY_MS)
                    .unwrap_or_default()
                    .format("%Y-%m-%d")
                    .to_string(),
                events: c.events,
                webhooks: c.webhooks,
            }
        })
        .collect())
}
