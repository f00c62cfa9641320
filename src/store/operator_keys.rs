//! Operator API keys: hashed at rest, scoped, optionally bound to one tenant.

use std::fmt;
use std::str::FromStr;

use nexus_proto::TenantId;
use serde::Serialize;
use uuid::Uuid;

use super::dialect::{on_pool, on_writer};
use super::{Result, Store, StoreError, conflict_as};
use crate::time::now_ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// A set of scopes. `admin` implies `write`, and `write` implies `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

#[derive(Debug, thiserror::Error)]
#[error("unknown scope {0:?} (expected read, write or admin)")]
pub struct UnknownScope(String);

impl FromStr for Scopes {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, UnknownScope> {
        let mut bits = 0;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let scope = Scope::ALL
                .into_iter()
                .find(|sc| sc.as_str() == part)
                .ok_or_else(|| UnknownScope(part.to_owned()))?;
            bits |= scope.bit();
        }
        if bits == 0 {
            return Err(UnknownScope(s.to_owned()));
        }
        Ok(Scopes(bits))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Scope::ALL
            .into_iter()
            .filter(|s| self.0 & s.bit() != 0)
            .map(Scope::as_str)
            .collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(Scope::ALL.into_iter().filter(|sc| self.0 & sc.bit() != 0))
    }
}

impl Scopes {
    /// Whether these scopes allow an action that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        let granted = match needed {
            Scope::Read => Scope::Read.bit() | Scope::Write.bit() | Scope::Admin.bit(),
            Scope::Write => Scope::Write.bit() | Scope::Admin.bit(),
            Scope::Admin => Scope::Admin.bit(),
        };
        self.0 & granted != 0
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OperatorKey {
    pub id: Uuid,
    /// `None` for a global key.
    pub tenant_id: Option<TenantId>,
    pub name: String,
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Scopes,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

type KeyRow = (Uuid, Option<Uuid>, String, String, i64);

fn from_row((id, tenant, name, scopes, created_at): KeyRow) -> Result<OperatorKey> {
    Ok(OperatorKey {
        id,
        tenant_id: tenant.map(TenantId::from_uuid),
        name,
        scopes: scopes
            .parse()
            .map_err(|e: UnknownScope| StoreError::Corrupt(e.to_string()))?,
        created_at,
    })
}

impl Store {
    pub async fn create_operator_key(
        &self,
        name: &str,
        scopes: Scopes,
        tenant: Option<TenantId>,
        key_hash: &str,
    ) -> Result<OperatorKey> {
        let key = OperatorKey {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            name: name.to_owned(),
            scopes,
            created_at: now_ms(),
        };
        on_writer!(self, p => {
            sqlx::query(
                "INSERT INTO operator_keys (id, tenant_id, name, key_hash, scopes, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(key.id)
            .bind(tenant.map(|t| *t.as_uuid()))
            .bind(name)
            .bind(key_hash)
            .bind(scopes.to_string())
            .bind(key.created_at)
            .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound("tenant")
            }
            _ => conflict_as("operator key")(e),
        })?;
        Ok(key)
    }

    /// The live (not revoked) key with this hash.
    pub async fn operator_key_by_hash(&self, key_hash: &str) -> Result<Option<OperatorKey>> {
        let row: Option<KeyRow> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT id, tenant_id, name, scopes, created_at FROM operator_keys \
                 WHERE key_hash = $1 AND revoked_at IS NULL",
            )
            .bind(key_hash)
            .fetch_optional(p)
            .await
        })?;
        row.map(from_row).transpose()
    }

    /// Live (not revoked) keys, oldest first; only `tenant`'s when given.
    pub async fn list_operator_keys(&self, tenant: Option<TenantId>) -> Result<Vec<OperatorKey>> {
        self.list_operator_keys_page(tenant, None, u32::MAX).await
    }

    /// The first `limit` live keys by id (UUIDv7: oldest first) after `after`.
    pub async fn list_operator_keys_page(
        &self,
        tenant: Option<TenantId>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<OperatorKey>> {
        let rows: Vec<KeyRow> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT id, tenant_id, name, scopes, created_at FROM operator_keys \
                 WHERE revoked_at IS NULL AND ($1 IS NULL OR tenant_id = $1) \
                 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
            )
            .bind(tenant.map(|t| *t.as_uuid()))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(from_row).collect()
    }

    /// Revokes a live key (of `tenant` only, when given); `NotFound` when there is none
    /// with this id there (or it is revoked already).
    pub async fn revoke_operator_key(
        &self,
        id: Uuid,
        tenant: Option<TenantId>,
    ) -> Result<OperatorKey> {
        let row: Option<KeyRow> = on_writer!(self, p => {
            sqlx::query_as(
                "UPDATE operator_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
                 AND ($3 IS NULL OR tenant_id = $3) \
                 RETURNING id, tenant_id, name, scopes, created_at",
            )
            .bind(now_ms())
            .bind(id)
            .bind(tenant.map(|t| *t.as_uuid()))
            .fetch_optional(p)
            .await
        })?;
        row.map(from_row)
            .transpose()?
            .ok_or(StoreError::NotFound("operator key"))
    }
}
