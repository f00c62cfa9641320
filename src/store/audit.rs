//! The audit log: one row per operator action (who, on which tenant, what, on what,
//! when, and non-secret details). Written by `crate::admin`, read by `GET /api/audit`
//! and `nexus audit list`, deleted past `--audit-retention` by the retention sweep.

use nexus_proto::TenantId;
use serde::Serialize;
use uuid::Uuid;

use super::dialect::{can_match, on_pool, on_writer};
use super::{Result, Store, StoreError};

/// A recorded action, as operators read it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// The operator key that acted; `None` for the CLI.
    pub actor_key_id: Option<Uuid>,
    /// The key's name, or `cli`.
    pub actor: String,
    pub tenant_id: Option<TenantId>,
    /// `tenant.suspend`, `agent.disable`, `job.cancel`…
    pub action: String,
    /// The id of what was acted on.
    pub target: String,
    /// Non-secret particulars (a JSON object).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// An action to record; `crate::admin` builds it from its `Actor`.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub actor_key_id: Option<Uuid>,
    pub actor: String,
    pub tenant_id: Option<TenantId>,
    pub action: &'static str,
    pub target: String,
    pub details: serde_json::Value,
}

/// Filters for listing; `None` matches everything. `since`/`until` are Unix ms,
/// inclusive and exclusive.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant: Option<TenantId>,
    pub action: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

type AuditRow = (
    Uuid,
    i64,
    Option<Uuid>,
    String,
    Option<Uuid>,
    String,
    String,
    String,
);

/// Inserts `$entry` (a [`NewAudit`]) on `$exec`: a macro so that it expands inside a
/// backend's arm of `on_writer!`, in the transaction of the change it records.
macro_rules! insert_audit {
    ($exec:expr, $entry:expr) => {{
        let e: &$crate::store::NewAudit = $entry;
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor_key_id, actor, tenant_id, action, target, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind($crate::time::now_ms())
        .bind(e.actor_key_id)
        .bind(e.actor.clone())
        .bind(e.tenant_id.map(|t| *t.as_uuid()))
        .bind(e.action)
        .bind(e.target.clone())
        .bind(e.details.to_string())
        .execute($exec)
        .await
    }};
}
pub(crate) use insert_audit;

impl Store {
    /// Records an action that had no transaction of its own to share.
    pub async fn record_audit(&self, entry: &NewAudit) -> Result<()> {
        on_writer!(self, p => insert_audit!(p, entry).map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Newest first; `before` is the last id of the previous page (ids are UUIDv7).
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        if filter.action.as_deref().is_some_and(|a| !can_match(a)) {
            return Ok(Vec::new());
        }
        let rows: Vec<AuditRow> = on_pool!(self, p => {
            sqlx::query_as(
                "SELECT id, at, actor_key_id, actor, tenant_id, action, target, details FROM audit_log \
                 WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR action = $2) \
                 AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4) \
                 AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6",
            )
            .bind(filter.tenant.map(|t| *t.as_uuid()))
            .bind(filter.action.clone())
            .bind(filter.since)
            .bind(filter.until)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await
        })?;
        rows.into_iter().map(entry).collect()
    }

    /// Deletes up to `limit` entries recorded before `before_ms` (the retention sweep).
    pub async fn delete_old_audit(&self, before_ms: i64, limit: u32) -> Result<u64> {
        self.delete_aged("audit_log", "id", "at", before_ms, limit)
            .await
    }
}

fn entry(
    (id, at, actor_key_id, actor, tenant, action, target, details): AuditRow,
) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id,
        at,
        actor_key_id,
        actor,
        tenant_id: tenant.map(TenantId::from_uuid),
        action,
        target,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::Corrupt(format!("audit details: {e}")))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The retention sweep takes entries older than its bound, a batch at a time.
    #[tokio::test]
    async fn old_entries_go_a_batch_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("nexus.db").display());
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let entry = NewAudit {
            actor_key_id: None,
            actor: "cli".into(),
            tenant_id: None,
            action: "test.sweep",
            target: "t".into(),
            details: serde_json::json!({}),
        };
        for _ in 0..3 {
            store.record_audit(&entry).await.expect("record");
        }
        let later = crate::time::now_ms() + 1_000;
        assert_eq!(
            store.delete_old_audit(later - 60_000, 10).await.ok(),
            Some(0)
        );
        assert_eq!(store.delete_old_audit(later, 2).await.ok(), Some(2));
        assert_eq!(store.delete_old_audit(later, 2).await.ok(), Some(1));
    }
}
