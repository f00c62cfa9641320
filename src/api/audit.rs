//! `GET /api/audit`: the audit log, newest first, filtered by tenant, action and time.
//! A tenant-bound key reads only its tenant's entries.

use axum::extract::State;
use chrono::DateTime;
use nexus_proto::TenantId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::page::PageQuery;
use crate::auth::Operator;
use crate::http::{ApiError, ApiJson, ApiQuery};
use crate::state::AppState;
use crate::store::{AuditFilter, Scope};

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    tenant: Option<String>,
    action: Option<String>,
    /// RFC 3339, inclusive.
    since: Option<String>,
    /// RFC 3339, exclusive.
    until: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

fn instant(field: &'static str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|d| d.timestamp_millis())
            .map_err(|e| ApiError::invalid_fields([(field, format!("is not RFC 3339: {e}"))]))
    })
    .transpose()
}

pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<ApiJson<Value>, ApiError> {
    op.require(Scope::Read)?;
    let page = q.page.page()?;
    let asked = q
        .tenant
        .as_deref()
        .map(|t| t.parse::<TenantId>())
        .transpose()
        .map_err(|_| ApiError::invalid_fields([("tenant", "is not a tenant id".to_owned())]))?;
    if let Some(t) = asked {
        op.tenant(t)?;
    }
    let filter = AuditFilter {
        tenant: op.0.tenant_id.or(asked),
        action: q.action,
        since: instant("since", q.since.as_deref())?,
        until: instant("until", q.until.as_deref())?,
    };
    // Newest first: the cursor is the last id of the previous page, and ids descend.
    let mut entries = state
        .store
        .list_audit(&filter, page.after, page.fetch())
        .await?;
    let next = page.finish(&mut entries, |e| e.id);
    Ok(ApiJson(json!({ "entries": entries, "next_cursor": next })))
}
