//! Cost alerts: thresholds on a tenant's or an agent's spend per UTC day or month, and
//! the record of each period one fired in (its primary key makes a firing once).

use nexus_proto::{AgentId, TenantId};
use serde::Serialize;
use uuid::Uuid;

use super::dialect::{on_pool, on_writer};
use super::secrets::alert_slot;
use super::{Result, Secret, Store, StoreError};
use crate::time::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertPeriod {
    Day,
    Month,
}

impl AlertPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertPeriod::Day => "day",
            AlertPeriod::Month => "month",
        }
    }

    fn parse(s: &str) -> Result<AlertPeriod> {
        match s {
            "day" => Ok(AlertPeriod::Day),
            "month" => Ok(AlertPeriod::Month),
            other => Err(StoreError::Corrupt(format!("alert period {other:?}"))),
        }
    }
}

/// An alert as operators see it: never its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CostAlert {
    pub id: Uuid,
    pub tenant_id: TenantId,
    /// `null`: the whole tenant's spend.
    pub agent_id: Option<AgentId>,
    pub period: AlertPeriod,
    pub threshold_usd: f64,
    pub webhook_url: Option<String>,
    pub slack_channel: Option<String>,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewAlert {
    pub tenant_id: TenantId,
    pub agent_id: Option<AgentId>,
    pub period: AlertPeriod,
    pub threshold_usd: f64,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<Secret>,
    pub slack_channel: Option<String>,
}

/// A period an alert fired in.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Firing {
    pub alert_id: Uuid,
    pub tenant_id: TenantId,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub period_start: i64,
    pub spend_usd: f64,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub fired_at: i64,
}

type AlertRow = (
    Uuid,
    Uuid,
    Option<Uuid>,
    String,
    f64,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

const COLS: &str = "id, tenant_id, agent_id, period, threshold_usd, webhook_url, webhook_secret, \
                    slack_channel, created_at";

fn alert(r: AlertRow) -> Result<CostAlert> {
    Ok(CostAlert {
        id: r.0,
        tenant_id: TenantId::from_uuid(r.1),
        agent_id: r.2.map(AgentId::from_uuid),
        period: AlertPeriod::parse(&r.3)?,
        threshold_usd: r.4,
        webhook_url: r.5,
        slack_channel: r.7,
        created_at: r.8,
    })
}

impl Store {
    pub async fn create_alert(&self, new: &NewAlert) -> Result<CostAlert> {
        let id = Uuid::now_v7();
        let secret = match &new.webhook_secret {
            Some(s) => Some(self.seal(&alert_slot(id), s)?),
            None => None,
        };
        on_writer!(self, p => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO cost_alerts ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            )))
            .bind(id)
            .bind(*new.tenant_id.as_uuid())
            .bind(new.agent_id.map(|a| *a.as_uuid()))
            .bind(new.period.as_str())
            .bind(new.threshold_usd)
            .bind(new.webhook_url.clone())
            .bind(secret.clone())
            .bind(new.slack_channel.clone())
            .bind(now_ms())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.get_alert(id, None).await.map(|(a, _)| a)
    }

    /// The alert and its webhook secret; `within` limits it to a tenant.
    pub async fn get_alert(
        &self,
        id: Uuid,
        within: Option<TenantId>,
    ) -> Result<(CostAlert, Option<Secret>)> {
        let row: Option<AlertRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLS} FROM cost_alerts WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)"
            )))
            .bind(id)
            .bind(within.map(|t| *t.as_uuid()))
            .fetch_optional(p)
            .await
        })?;
        let row = row.ok_or(StoreError::NotFound("alert"))?;
        let secret = match &row.6 {
            Some(sealed) => Some(self.open(&alert_slot(row.0), sealed)?),
            None => None,
        };
        Ok((alert(row)?, secret))
    }

    /// Every alert, or a tenant's, oldest first.
    pub async fn list_alerts(&self, tenant: Option<TenantId>) -> Result<Vec<CostAlert>> {
        self.list_alerts_page(tenant, None, u32::MAX).await
    }

    /// A page of [`Store::list_alerts`], after the alert `after`.
    pub async fn list_alerts_page(
        &self,
        tenant: Option<TenantId>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<CostAlert>> {
        let rows: Vec<AlertRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLS} FROM cost_alerts WHERE ($1 IS NULL OR tenant_id = $1) \
                 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
            )))
            .bind(tenant.map(|t| *t.as_uuid()))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(alert).collect()
    }

    pub async fn delete_alert(&self, id: Uuid, within: Option<TenantId>) -> Result<()> {
        let n = on_writer!(self, p => {
            sqlx::query("DELETE FROM cost_alerts WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)")
                .bind(id)
                .bind(within.map(|t| *t.as_uuid()))
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        if n == 0 {
            return Err(StoreError::NotFound("alert"));
        }
        Ok(())
    }

    /// Records that `alert` fired for the period starting `period_start`; `false` when
    /// it already had (then nothing is to be sent).
    pub async fn record_firing(
        &self,
        a: &CostAlert,
        period_start: i64,
        spend_usd: f64,
    ) -> Result<bool> {
        let inserted = on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO cost_alert_firings (alert_id, period_start, tenant_id, spend_usd, fired_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (alert_id, period_start) DO NOTHING",
            )
            .bind(a.id)
            .bind(period_start)
            .bind(*a.tenant_id.as_uuid())
            .bind(spend_usd)
            .bind(now_ms())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(inserted > 0)
    }

    pub async fn has_fired(&self, a: &CostAlert, period_start: i64) -> Result<bool> {
        let row: Option<(i64,)> = on_pool!(self, p => {
            sqlx::query_as("SELECT period_start FROM cost_alert_firings WHERE alert_id = $1 AND period_start = $2")
                .bind(a.id)
                .bind(period_start)
                .fetch_optional(p)
                .await
        })?;
        Ok(row.is_some())
    }

    /// Firings newest first (by time, then alert), of every tenant or one, after the
    /// firing `after` (its `fired_at` and alert).
    pub async fn list_firings(
        &self,
        tenant: Option<TenantId>,
        after: Option<(i64, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Firing>> {
        let rows: Vec<(Uuid, Uuid, i64, f64, i64)> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT alert_id, tenant_id, period_start, spend_usd, fired_at FROM cost_alert_firings \
                 WHERE ($1 IS NULL OR tenant_id = $1) \
                 AND ($2 IS NULL OR fired_at < $2 OR (fired_at = $2 AND alert_id < $3)) \
                 ORDER BY fired_at DESC, alert_id DESC LIMIT $4",
            )
            .bind(tenant.map(|t| *t.as_uuid()))
            .bind(after.map(|(at, _)| at))
            .bind(after.map(|(_, id)| id))
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(alert_id, tenant, period_start, spend_usd, fired_at)| Firing {
                    alert_id,
                    tenant_id: TenantId::from_uuid(tenant),
                    period_start,
                    spend_usd,
                    fired_at,
                },
            )
            .collect())
    }
}
