//! Token usage summed from `session_usage`, for usage analytics: one grouped statement
//! per request, read through the `(tenant_id, started_at)` index (on PostgreSQL, only
//! the monthly partitions the range touches). Sums stay per model, since each model has
//! its own prices; costs are computed by the caller.

use std::str::FromStr;

use nexus_proto::{AgentId, TenantId};
use uuid::Uuid;

use super::activity::DAY_MS;
use super::dialect::on_pool;
use super::{Result, Store};
use crate::config::Tokens;

/// What usage is summed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroup {
    /// UTC day of the session's start.
    Day,
    Model,
    Agent,
}

impl UsageGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageGroup::Day => "day",
            UsageGroup::Model => "model",
            UsageGroup::Agent => "agent",
        }
    }
}

impl FromStr for UsageGroup {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<UsageGroup, String> {
        match s {
            "day" => Ok(UsageGroup::Day),
            "model" => Ok(UsageGroup::Model),
            "agent" => Ok(UsageGroup::Agent),
            _ => Err("must be day, model or agent".into()),
        }
    }
}

/// Sessions of `tenant` (and of `agent`, if given) started in `[from, to)`, Unix ms.
#[derive(Debug, Clone, Copy)]
pub struct UsageFilter {
    pub tenant: TenantId,
    pub agent: Option<AgentId>,
    pub from: i64,
    pub to: i64,
}

/// A group's key as stored: days since the Unix epoch, a model, an agent with its name
/// (`None` once the agent is deleted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum UsageKey {
    Day(i64),
    Model(String),
    Agent(AgentId, Option<String>),
}

/// The tokens one model used within one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSum {
    pub key: UsageKey,
    pub model: String,
    pub tokens: Tokens,
}

/// The four sums, cast so PostgreSQL answers `bigint` rather than `numeric`.
const SUMS: &str = "CAST(SUM(input_tokens) AS BIGINT) AS i, CAST(SUM(output_tokens) AS BIGINT) AS o, \
                    CAST(SUM(cache_read_tokens) AS BIGINT) AS r, \
                    CAST(SUM(cache_write_tokens) AS BIGINT) AS w";

/// The filter, on the index's columns first.
const WHERE: &str = "WHERE tenant_id = $1 AND started_at >= $2 AND started_at < $3 \
                     AND ($4 IS NULL OR agent_id = $4)";

type Sums = (i64, i64, i64, i64);
type DayRow = (i64, String, i64, i64, i64, i64);
type ModelRow = (String, i64, i64, i64, i64);
type AgentRow = (Uuid, Option<String>, String, i64, i64, i64, i64);

fn tokens((i, o, r, w): Sums) -> Tokens {
    let n = |v: i64| u64::try_from(v).unwrap_or_default();
    Tokens {
        input_tokens: n(i),
        output_tokens: n(o),
        cache_read_tokens: n(r),
        cache_write_tokens: n(w),
    }
}

impl Store {
    /// Tokens per (group, model) of the sessions `filter` selects.
    pub async fn usage_sums(&self, filter: &UsageFilter, by: UsageGroup) -> Result<Vec<UsageSum>> {
        let tenant = *filter.tenant.as_uuid();
        let agent = filter.agent.map(|a| *a.as_uuid());
        let sql = match by {
            UsageGroup::Day => format!(
                "SELECT started_at / {DAY_MS} AS day, model, {SUMS} FROM session_usage {WHERE} \
                 GROUP BY day, model"
            ),
            UsageGroup::Model => {
                format!("SELECT model, {SUMS} FROM session_usage {WHERE} GROUP BY model")
            }
            // Summed first, then named: the join touches one row per agent and model.
            UsageGroup::Agent => format!(
                "SELECT s.agent_id, a.name, s.model, s.i, s.o, s.r, s.w FROM \
                 (SELECT agent_id, model, {SUMS} FROM session_usage {WHERE} \
                 GROUP BY agent_id, model) s LEFT JOIN agents a ON a.id = s.agent_id"
            ),
        };
        let sql = sqlx::AssertSqlSafe(sql);
        let (from, to) = (filter.from, filter.to);
        Ok(match by {
            UsageGroup::Day => {
                let rows: Vec<DayRow> = on_pool!(self, p => {
                    sqlx::query_as(sql).bind(tenant).bind(from).bind(to).bind(agent)
                        .fetch_all(p).await
                })?;
                rows.into_iter()
                    .map(|(day, model, i, o, r, w)| UsageSum {
                        key: UsageKey::Day(day),
                        model,
                        tokens: tokens((i, o, r, w)),
                    })
                    .collect()
            }
            UsageGroup::Model => {
                let rows: Vec<ModelRow> = on_pool!(self, p => {
                    sqlx::query_as(sql).bind(tenant).bind(from).bind(to).bind(agent)
                        .fetch_all(p).await
                })?;
                rows.into_iter()
                    .map(|(model, i, o, r, w)| UsageSum {
                        key: UsageKey::Model(model.clone()),
                        model,
                        tokens: tokens((i, o, r, w)),
                    })
                    .collect()
            }
            UsageGroup::Agent => {
                let rows: Vec<AgentRow> = on_pool!(self, p => {
                    sqlx::query_as(sql).bind(tenant).bind(from).bind(to).bind(agent)
                        .fetch_all(p).await
                })?;
                rows.into_iter()
                    .map(|(agent, name, model, i, o, r, w)| UsageSum {
                        key: UsageKey::Agent(AgentId::from_uuid(agent), name),
                        model,
                        tokens: tokens((i, o, r, w)),
                    })
                    .collect()
            }
        })
    }
}
