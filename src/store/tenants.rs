//! Tenants: the unit of isolation. Every agent, mapping and key belongs to one.

use nexus_proto::TenantId;
use serde::Serialize;
use uuid::Uuid;

use super::dialect::{on_pool, on_writer};
use super::{Result, Store, StoreError, conflict_as};
use crate::time::now_ms;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub tier: String,
    #[serde(with = "crate::time::ms_rfc3339")]
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    id: Uuid,
    name: String,
    tier: String,
    created_at: i64,
}

impl From<TenantRow> for Tenant {
    fn from(r: TenantRow) -> Self {
        Tenant {
            id: TenantId::from_uuid(r.id),
            name: r.name,
            tier: r.tier,
            created_at: r.created_at,
        }
    }
}

impl Store {
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        let tenant = Tenant {
            id: TenantId::new_v7(),
            name: name.to_owned(),
            tier: "standard".into(),
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
        let rows: Vec<TenantRow> = on_pool!(self, p => {
            sqlx::query_as("SELECT id, name, tier, created_at FROM tenants ORDER BY id")
                .fetch_all(p)
                .await
        })?;
        Ok(rows.into_iter().map(Tenant::from).collect())
    }

    pub async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
        let row: Option<TenantRow> = on_pool!(self, p => {
            sqlx::query_as("SELECT id, name, tier, created_at FROM tenants WHERE id = $1")
                .bind(*id.as_uuid())
                .fetch_optional(p)
                .await
        })?;
        row.map(Tenant::from).ok_or(StoreError::NotFound("tenant"))
    }
}
