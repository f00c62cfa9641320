//! Usage analytics: a tenant's tokens and their cost per UTC day, model or agent, as
//! the API, the CLI and the dashboard show them. Costs come from the price table at
//! the time of asking, so a changed table re-prices past usage.

use std::collections::{BTreeMap, BTreeSet};

use chrono::DateTime;
use nexus_proto::{AgentId, TenantId};
use serde::Serialize;

use super::AdminError;
use crate::config::{Prices, Tokens};
use crate::store::{DAY_MS, Store, UsageFilter, UsageGroup, UsageKey};

/// The range asked without `from`: this many days up to `to`.
pub const DEFAULT_DAYS: i64 = 30;

/// What to report: `from` inclusive, `to` exclusive (Unix ms of the sessions' start),
/// `None` for the defaults (`to` now, `from` [`DEFAULT_DAYS`] before it).
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub tenant: TenantId,
    pub agent: Option<AgentId>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub group_by: UsageGroup,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    pub group_by: UsageGroup,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub from: i64,
    /// Exclusive.
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub to: i64,
    /// Days oldest first (days without usage are absent); models and agents costliest
    /// first.
    pub rows: Vec<UsageRow>,
    pub total: UsageTotal,
    /// Models used in the range that the price table has no price for: they cost 0.
    pub unpriced_models: Vec<String>,
}

/// One group's tokens and cost.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageRow {
    /// `YYYY-MM-DD` (UTC) by day, the model by model, the agent's id by agent.
    pub key: String,
    /// The agent's name, by agent (absent once the agent is deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub tokens: Tokens,
    /// USD, to the millionth.
    pub cost_usd: f64,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct UsageTotal {
    #[serde(flatten)]
    pub tokens: Tokens,
    pub cost_usd: f64,
}

/// Usage of the tenant's sessions as `q` asks, priced by `prices`.
pub async fn usage(
    store: &Store,
    prices: &Prices,
    q: &UsageQuery,
    now_ms: i64,
) -> Result<UsageReport, AdminError> {
    let to = q.to.unwrap_or(now_ms);
    let from = q.from.unwrap_or(to - DEFAULT_DAYS * DAY_MS);
    if from >= to {
        return Err(AdminError::Field {
            field: "from",
            message: "must be before `to`".into(),
        });
    }
    store.get_tenant(q.tenant).await?;
    let filter = UsageFilter {
        tenant: q.tenant,
        agent: q.agent,
        from,
        to,
    };
    let mut groups: BTreeMap<UsageKey, UsageTotal> = BTreeMap::new();
    let mut unpriced = BTreeSet::new();
    for sum in store.usage_sums(&filter, q.group_by).await? {
        let cost = match prices.get(&sum.model) {
            Some(price) => price.cost(&sum.tokens),
            None => {
                unpriced.insert(sum.model);
                0.0
            }
        };
        let group = groups.entry(sum.key).or_default();
        group.tokens += sum.tokens;
        group.cost_usd += cost;
    }
    let mut total = UsageTotal::default();
    let mut rows: Vec<UsageRow> = groups
        .into_iter()
        .map(|(key, g)| {
            total.tokens += g.tokens;
            total.cost_usd += g.cost_usd;
            row(key, g)
        })
        .collect();
    if q.group_by != UsageGroup::Day {
        rows.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then(a.key.cmp(&b.key)));
    }
    total.cost_usd = micro_usd(total.cost_usd);
    Ok(UsageReport {
        group_by: q.group_by,
        from,
        to,
        rows,
        total,
        unpriced_models: unpriced.into_iter().collect(),
    })
}

fn row(key: UsageKey, g: UsageTotal) -> UsageRow {
    let (key, name) = match key {
        UsageKey::Day(day) => (
            DateTime::from_timestamp_millis(day * DAY_MS)
                .unwrap_or_default()
                .format("%Y-%m-%d")
                .to_string(),
            None,
        ),
        UsageKey::Model(model) => (model, None),
        UsageKey::Agent(agent, name) => (agent.to_string(), name),
    };
    UsageRow {
        key,
        name,
        tokens: g.tokens,
        cost_usd: micro_usd(g.cost_usd),
    }
}

/// Costs are shown to the millionth of a dollar: sums of float products carry noise
/// below that.
fn micro_usd(usd: f64) -> f64 {
    (usd * 1e6).round() / 1e6
}
