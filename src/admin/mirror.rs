//! Configuring the mirror: project mappings, aliases, identities.

use nexus_proto::{AgentId, ClickUpListId, SlackChannelId, TenantId};

use super::AdminError;
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

pub async fn add_mapping(store: &Store, spec: MappingSpec) -> Result<ProjectMapping, AdminError> {
    store.get_tenant(spec.tenant).await?;
    check_agents(store, spec.tenant, &spec.default_agents).await?;
    Ok(store
        .create_mapping(NewMapping {
            tenant_id: spec.tenant,
            clickup_list_id: spec.clickup_list,
            slack_channel_id: spec.slack_channel,
            open_threads: spec.open_threads,
            default_agents: spec.default_agents,
        })
        .await?)
}

/// Creates `@alias`, or adds agents to it. The name is what people type after `@`.
pub async fn add_alias(
    store: &Store,
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
    Ok(store.add_alias(tenant, alias, agents).await?)
}

pub async fn add_identity(
    store: &Store,
    agent: AgentId,
    user: ExternalUser,
) -> Result<Identity, AdminError> {
    Ok(store.add_identity(agent, user).await?)
}
