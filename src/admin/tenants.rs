//! Operator actions on tenants: create, rename and re-tier, tool policy, suspend and
//! resume, delete with all their data. Each leaves an audit record.

use nexus_proto::TenantId;
use serde_json::json;

use super::{Actor, AdminError, check_name};
use crate::config::Tiers;
use crate::store::{Store, Tenant, TenantChange, TenantStatus, ToolScope};

/// A new tenant gets the configured default tier.
pub async fn create_tenant(
    store: &Store,
    tiers: &Tiers,
    actor: &Actor,
    name: &str,
) -> Result<Tenant, AdminError> {
    check_name("name", name)?;
    let tenant = store.create_tenant(name, tiers.default_name()).await?;
    let audit = actor.audit(
        Some(tenant.id),
        "tenant.create",
        tenant.id,
        json!({ "name": name, "tier": tenant.tier }),
    );
    store.record_audit(&audit).await?;
    Ok(tenant)
}

/// Only a configured tier: a typo would otherwise leave the tenant on the default's limits.
fn check_tier(tiers: &Tiers, tier: &str) -> Result<(), AdminError> {
    if tiers.contains(tier) {
        Ok(())
    } else {
        Err(AdminError::field(
            "tier",
            format!(
                "no tier {tier:?} is configured; the tiers are: {}",
                tiers.names()
            ),
        ))
    }
}

pub async fn update_tenant(
    store: &Store,
    tiers: &Tiers,
    actor: &Actor,
    id: TenantId,
    change: TenantChange,
) -> Result<Tenant, AdminError> {
    if change.name.is_none() && change.tier.is_none() {
        return Err(AdminError::field("name", "give a name or a tier to change"));
    }
    if let Some(name) = &change.name {
        check_name("name", name)?;
    }
    if let Some(tier) = &change.tier {
        check_tier(tiers, tier)?;
    }
    let details = json!({ "name": change.name, "tier": change.tier });
    let audit = actor.audit(Some(id), "tenant.update", id, details);
    Ok(store.update_tenant(id, &change, &audit).await?)
}

/// Suspends or resumes the tenant. The caller closes the tenant's live sessions on its
/// node at once; other nodes close them within `--reconcile-interval`.
pub async fn set_tenant_status(
    store: &Store,
    actor: &Actor,
    id: TenantId,
    status: TenantStatus,
) -> Result<Tenant, AdminError> {
    let action = match status {
        TenantStatus::Suspended => "tenant.suspend",
        TenantStatus::Active => "tenant.resume",
    };
    let audit = actor.audit(Some(id), action, id, json!({}));
    Ok(store.set_tenant_status(id, status, &audit).await?)
}

/// Deletes the tenant with everything of it, in one transaction with its audit record.
pub async fn delete_tenant(store: &Store, actor: &Actor, id: TenantId) -> Result<(), AdminError> {
    let tenant = store.get_tenant(id).await?;
    let audit = actor.audit(
        Some(id),
        "tenant.delete",
        id,
        json!({ "name": tenant.name }),
    );
    Ok(store.delete_tenant(id, &audit).await?)
}

/// What the tenant's agents may do with tools (see the README's `## Security`).
pub async fn set_tenant_tools(
    store: &Store,
    actor: &Actor,
    tenant: TenantId,
    scope: Option<ToolScope>,
    allow_broadcasts: Option<bool>,
) -> Result<Tenant, AdminError> {
    if scope.is_none() && allow_broadcasts.is_none() {
        return Err(AdminError::Invalid(
            "nothing to change: give a tool scope or allow_broadcasts".into(),
        ));
    }
    let updated = store
        .set_tenant_tools(tenant, scope, allow_broadcasts)
        .await?;
    let details = json!({
        "tool_scope": scope.map(ToolScope::as_str),
        "allow_broadcasts": allow_broadcasts,
    });
    let audit = actor.audit(Some(tenant), "tenant.set_tools", tenant, details);
    store.record_audit(&audit).await?;
    Ok(updated)
}
