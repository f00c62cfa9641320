//! `GET /api/audit`: the audit log, newest first, filtered by tenant, action and time.
//! A tenant-bound key reads only its tenant's entries.

use axum::extract::State;
use chrono::DateTime;
use nexus_proto::TenantId;
use serde::{Deserialize, Serialize};

use super::page::PageQuery;
use crate::auth::Operator;
use crate::http::responses::{BadRequest, NotFound, OperatorErrors};
use crate::http::{ApiError, ApiJson, ApiQuery};
use crate::state::AppState;
use crate::store::{AuditEntry, AuditFilter, Scope};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this tenant's entries (a tenant-bound key: its own only).
    #[param(value_type = Option<TenantId>)]
    tenant: Option<String>,
    /// Only this action, e.g. `agent.disable`.
    action: Option<String>,
    /// RFC 3339, inclusive.
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<String>,
    /// RFC 3339, exclusive.
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

fn instant(field: &'static str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|d| d.timestamp_millis())
            .map_err(|e| ApiError::invalid_fields([(field, format!("is not RFC 3339: {e}"))]))
    })
    .transpose()
}

/// Operator actions, newest first.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    params(AuditQuery, PageQuery),
    responses(
        (status = 200, description = "A page of audit entries", body = AuditPage),
        BadRequest, NotFound, OperatorErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    op: Operator,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<ApiJson<AuditPage>, ApiError> {
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
    Ok(ApiJson(AuditPage {
        entries,
        next_cursor: next,
    }))
}
