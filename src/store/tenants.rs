//! Tenants: the unit of isolation. Every agent, mapping and key belongs to one.

use nexus_proto::TenantId;
use serde::Serialize;
use uuid::Uuid;

use super::audit::insert_audit;
use super::dialect::{on_pool, on_writer};
use super::{NewAudit, Result, Store, StoreError, conflict_as};
use crate::time::now_ms;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub tier: String,
    pub status: TenantStatus,
    /// Which Slack channels and ClickUp tasks the tenant's agents' tools may reach.
    pub tool_scope: ToolScope,
    /// Tools may post `<!channel>`, `<!here>`, `@everyone`, user-group mentions as they are.
    pub allow_broadcasts: bool,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A suspended tenant's agents get no token and no socket, and its webhooks are kept
/// as dead jobs (`tenant_suspended`) instead of being processed.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    #[default]
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    pub(super) fn parse(s: &str) -> Result<TenantStatus> {
        match s {
            "active" => Ok(TenantStatus::Active),
            "suspended" => Ok(TenantStatus::Suspended),
            other => Err(StoreError::Corrupt(format!("tenant status {other:?}"))),
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ToolScope {
    /// Only the channels and lists (with their tasks) of the tenant's project mappings.
    #[default]
    Mapped,
    /// Whatever the tenant's Slack and ClickUp tokens reach.
    Any,
}

impl ToolScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolScope::Mapped => "mapped",
            ToolScope::Any => "any",
        }
    }

    fn parse(s: &str) -> Result<ToolScope> {
        match s {
            "mapped" => Ok(ToolScope::Mapped),
            "any" => Ok(ToolScope::Any),
            other => Err(StoreError::Corrupt(format!("tool scope {other:?}"))),
        }
    }
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: Uuid,
    name: String,
    tier: String,
    status: String,
    tool_scope: String,
    allow_broadcasts: bool,
    created_at: i64,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;
    fn try_from(r: TenantRow) -> Result<Self> {
        Ok(Tenant {
            id: TenantId::from_uuid(r.id),
            name: r.name,
            tier: r.tier,
            status: TenantStatus::parse(&r.status)?,
            tool_scope: ToolScope::parse(&r.tool_scope)?,
            allow_broadcasts: r.allow_broadcasts,
            created_at: r.created_at,
        })
    }
}

const TENANT_COLS: &str = "id, name, tier, status, tool_scope, allow_broadcasts, created_at";

/// What `PATCH /api/tenants/{id}` changes; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    pub name: Option<String>,
    pub tier: Option<String>,
}

impl Store {
    pub async fn create_tenant(&self, name: &str, tier: &str) -> Result<Tenant> {
        let tenant = Tenant {
            id: TenantId::new_v7(),
            name: name.to_owned(),
            tier: tier.to_owned(),
            status: TenantStatus::Active,
            tool_scope: ToolScope::default(),
            allow_broadcasts: false,
            created_at: now_ms(),
        };
        on_writer!(self, p => {
            sqlx::query("INSERT INTO tenants (id, name, tier, created_at) VALUES ($1, $2, $3, $4)")
                .bind(*tenant.id.as_uuid())
                .bind(&tenant.name)
                .bind(&tenant.tier)
                .bind(tenant.created_at)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(conflict_as("tenant"))?;
        Ok(tenant)
    }

    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants ORDER BY id");
        let rows: Vec<TenantRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).fetch_all(p).await
        })?;
        rows.into_iter().map(Tenant::try_from).collect()
    }

    /// A page of tenants in id order after `after`; `only` restricts to one tenant
    /// (what a tenant-bound key sees).
    pub async fn list_tenants_page(
        &self,
        only: Option<TenantId>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Tenant>> {
        let sql = format!(
            "SELECT {TENANT_COLS} FROM tenants WHERE ($1 IS NULL OR id = $1) \
             AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows: Vec<TenantRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(only.map(|t| *t.as_uuid()))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })?;
        rows.into_iter().map(Tenant::try_from).collect()
    }

    pub async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
        let sql = format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1");
        let row: Option<TenantRow> = on_pool!(self, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(*id.as_uuid())
                .fetch_optional(p)
                .await
        })?;
        row.ok_or(StoreError::NotFound("tenant"))?.try_into()
    }

    /// Changes what the tenant's agents may do with tools; `None` keeps a setting.
    pub async fn set_tenant_tools(
        &self,
        id: TenantId,
        scope: Option<ToolScope>,
        allow_broadcasts: Option<bool>,
    ) -> Result<Tenant> {
        let changed = on_writer!(self, p => {
            sqlx::query(
                "UPDATE tenants SET tool_scope = COALESCE($2, tool_scope), \
                 allow_broadcasts = COALESCE($3, allow_broadcasts) WHERE id = $1",
            )
            .bind(*id.as_uuid())
            .bind(scope.map(ToolScope::as_str))
            .bind(allow_broadcasts)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        if changed == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        self.get_tenant(id).await
    }

    /// Renames or re-tiers the tenant, recording `audit` in the same transaction.
    pub async fn update_tenant(
        &self,
        id: TenantId,
        change: &TenantChange,
        audit: &NewAudit,
    ) -> Result<Tenant> {
        let changed = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(
                "UPDATE tenants SET name = COALESCE($2, name), tier = COALESCE($3, tier) WHERE id = $1",
            )
            .bind(*id.as_uuid())
            .bind(change.name.clone())
            .bind(change.tier.clone())
            .execute(&mut *tx)
            .await
            .map_err(conflict_as("tenant"))?
            .rows_affected();
            if n > 0 {
                insert_audit!(&mut *tx, audit)?;
            }
            tx.commit().await?;
            n
        });
        if changed == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        self.get_tenant(id).await
    }

    /// Suspends or resumes the tenant, recording `audit` in the same transaction.
    pub async fn set_tenant_status(
        &self,
        id: TenantId,
        status: TenantStatus,
        audit: &NewAudit,
    ) -> Result<Tenant> {
        let changed = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("UPDATE tenants SET status = $2 WHERE id = $1")
                .bind(*id.as_uuid())
                .bind(status.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                insert_audit!(&mut *tx, audit)?;
            }
            tx.commit().await?;
            n
        });
        if changed == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        self.get_tenant(id).await
    }

    /// Deletes the tenant and, by cascade, everything of it (agents and their inboxes,
    /// sources, jobs, mappings, aliases, identities, tasks, side effects, its keys),
    /// recording `audit` in the same transaction.
    pub async fn delete_tenant(&self, id: TenantId, audit: &NewAudit) -> Result<()> {
        let deleted = on_writer!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("DELETE FROM tenants WHERE id = $1")
                .bind(*id.as_uuid())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                insert_audit!(&mut *tx, audit)?;
            }
            tx.commit().await?;
            n
        });
        if deleted == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        Ok(())
    }
}
