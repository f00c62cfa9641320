//! Configuring the mirror: project mappings, aliases, identities.

use nexus_proto::{AgentId, ClickUpListId, SlackChannelId, TenantId};
use serde_json::json;
use uuid::Uuid;

use super::{Actor, AdminError};
use crate::store::{Alias, ExternalUser, Identity, NewMapping, ProjectMapping, Store};

/// An alias is what people type after `@`: one word of plain characters.
fn check_alias(alias: &str) -> Result<(), AdminError> {
    let ok = !alias.is_empty()
        && alias.len() <= 64
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(AdminError::Invalid(
            "the alias must be 1–64 characters of letters, digits, '_', '-' or '.'".into(),
        ));
    }
    Ok(())
}

/// Every agent must exist and belong to `tenant`.
async fn check_agents(
    store: &Store,
    tenant: TenantId,
    agents: &[AgentId],
) -> Result<(), AdminError> {
    for agent in agents {
        super::agent_of(store, tenant, *agent).await?;
    }
    Ok(())
}

pub struct MappingSpec {
    pub tenant: TenantId,
    pub clickup_list: ClickUpListId,
    pub slack_channel: SlackChannelId,
    pub default_agents: Vec<AgentId>,
    pub open_threads: bool,
}

pub async fn add_mapping(
    store: &Store,
    actor: &Actor,
    spec: MappingSpec,
) -> Result<ProjectMapping, AdminError> {
    store.get_tenant(spec.tenant).await?;
    check_agents(store, spec.tenant, &spec.default_agents).await?;
    let mapping = store
        .create_mapping(NewMapping {
            tenant_id: spec.tenant,
            clickup_list_id: spec.clickup_list,
            slack_channel_id: spec.slack_channel,
            open_threads: spec.open_threads,
            default_agents: spec.default_agents,
        })
        .await?;
    let details = json!({
        "clickup_list_id": mapping.clickup_list_id,
        "slack_channel_id": mapping.slack_channel_id,
    });
    let audit = actor.audit(Some(spec.tenant), "mapping.create", mapping.id, details);
    store.record_audit(&audit).await?;
    Ok(mapping)
}

/// Removes the tenant's mapping; one of another tenant is not found.
pub async fn remove_mapping(
    store: &Store,
    actor: &Actor,
    tenant: TenantId,
    id: Uuid,
) -> Result<(), AdminError> {
    if store.get_mapping(id).await?.tenant_id != tenant {
        return Err(crate::store::StoreError::NotFound("mapping").into());
    }
    store.remove_mapping(id).await?;
    let audit = actor.audit(Some(tenant), "mapping.delete", id, json!({}));
    Ok(store.record_audit(&audit).await?)
}

/// Creates `@alias`, or adds agents to it. The name is what people type after `@`.
pub async fn add_alias(
    store: &Store,
    actor: &Actor,
    tenant: TenantId,
    alias: &str,
    agents: &[AgentId],
) -> Result<Alias, AdminError> {
    let alias = alias.strip_prefix('@').unwrap_or(alias);
    check_alias(alias)?;
    if agents.is_empty() {
        return Err(AdminError::Invalid(
            "an alias needs at least one agent".into(),
        ));
    }
    store.get_tenant(tenant).await?;
    check_agents(store, tenant, agents).await?;
    let added = store.add_alias(tenant, alias, agents).await?;
    let details = json!({ "alias": alias, "agents": agents });
    let audit = actor.audit(Some(tenant), "alias.add", added.id, details);
    store.record_audit(&audit).await?;
    Ok(added)
}

/// Removes the tenant's alias; one of another tenant is not found.
pub async fn remove_alias(
    store: &Store,
    actor: &Actor,
    tenant: TenantId,
    id: Uuid,
) -> Result<(), AdminError> {
    if store.get_alias(id).await?.tenant_id != tenant {
        return Err(crate::store::StoreError::NotFound("alias").into());
    }
    store.remove_alias(id).await?;
    let audit = actor.audit(Some(tenant), "alias.delete", id, json!({}));
    Ok(store.record_audit(&audit).await?)
}

pub async fn add_identity(
    store: &Store,
    actor: &Actor,
    agent: AgentId,
    user: ExternalUser,
) -> Result<Identity, AdminError> {
    let identity = store.add_identity(agent, user.clone()).await?;
    let tenant = store.get_agent(agent).await?.tenant_id;
    let audit = actor.audit(Some(tenant), "identity.add", agent, json!({ "user": user }));
    store.record_audit(&audit).await?;
    Ok(identity)
}

/// Removes the tenant's identity `user` (of `agent`, if given).
pub async fn remove_identity(
    store: &Store,
    actor: &Actor,
    tenant: TenantId,
    user: ExternalUser,
    agent: Option<AgentId>,
) -> Result<(), AdminError> {
    store.remove_identity(tenant, &user, agent).await?;
    let audit = actor.audit(
        Some(tenant),
        "identity.delete",
        tenant,
        json!({ "user": user }),
    );
    Ok(store.record_audit(&audit).await?)
}

/// Changes the tenant's mapping: its default agents (all of the tenant) and/or whether
/// it opens threads.
pub async fn update_mapping(
    store: &Store,
    actor: &Actor,
    tenant: TenantId,
    id: Uuid,
    default_agents: Option<Vec<AgentId>>,
    open_threads: Option<bool>,
) -> Result<ProjectMapping, AdminError> {
    if default_agents.is_none() && open_threads.is_none() {
        return Err(AdminError::field(
            "default_agents",
            "give default_agents or open_threads to change",
        ));
    }
    if store.get_mapping(id).await?.tenant_id != tenant {
        return Err(crate::store::StoreError::NotFound("mapping").into());
    }
    if let Some(agents) = &default_agents {
        check_agents(store, tenant, agents).await?;
    }
    let details = json!({ "default_agents": default_agents, "open_threads": open_threads });
    let audit = actor.audit(Some(tenant), "mapping.update", id, details);
    let agents = default_agents.as_deref();
    Ok(store
        .update_mapping(id, agents, open_threads, &audit)
        .await?)
}

/// Replaces the members of the tenant's alias.
pub async fn set_alias_agents(
    store: &Store,
    actor: &Actor,
    tenant: TenantId,
    id: Uuid,
    agents: &[AgentId],
) -> Result<Alias, AdminError> {
    if agents.is_empty() {
        return Err(AdminError::field(
            "agents",
            "an alias needs at least one agent",
        ));
    }
    if store.get_alias(id).await?.tenant_id != tenant {
        return Err(crate::store::StoreError::NotFound("alias").into());
    }
    check_agents(store, tenant, agents).await?;
    let audit = actor.audit(
        Some(tenant),
        "alias.update",
        id,
        json!({ "agents": agents }),
    );
    Ok(store.set_alias_agents(id, agents, &audit).await?)
}

/// Makes the tenant's identity `user` another of its agents'.
pub async fn move_identity(
    store: &Store,
    actor: &Actor,
    tenant: TenantId,
    user: ExternalUser,
    agent: AgentId,
) -> Result<Identity, AdminError> {
    super::agent_of(store, tenant, agent).await?;
    let details = json!({ "user": user, "agent_id": agent });
    let audit = actor.audit(Some(tenant), "identity.update", agent, details);
    Ok(store.move_identity(tenant, &user, agent, &audit).await?)
}
