//! Configuring the mirror: project mappings, aliases, identities.

use nexus_proto::{AgentId, TenantId};

use super::AdminError;
use crate::store::{Alias, Identity, NewMapping, ProjectMapping, Provider, Store};

/// External ids (list, channel, user ids) go into URLs and SQL parameters: keep them plain.
fn check_external(what: &str, id: &str) -> Result<(), AdminError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(AdminError::Invalid(format!(
            "{what} must be 1–64 characters of letters, digits, '_', '-' or '.'"
        )));
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
        if store.get_agent(*agent).await?.tenant_id != tenant {
            return Err(AdminError::Invalid(format!(
                "agent {agent} belongs to another tenant"
            )));
        }
    }
    Ok(())
}

pub struct MappingSpec {
    pub tenant: TenantId,
    pub clickup_list: String,
    pub slack_channel: String,
    pub default_agents: Vec<AgentId>,
    pub open_threads: bool,
}

pub async fn add_mapping(store: &Store, spec: MappingSpec) -> Result<ProjectMapping, AdminError> {
    check_external("the ClickUp list id", &spec.clickup_list)?;
    check_external("the Slack channel id", &spec.slack_channel)?;
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
    check_external("the alias", alias)?;
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
    provider: Provider,
    user: &str,
) -> Result<Identity, AdminError> {
    check_external("the user id", user)?;
    Ok(store.add_identity(agent, provider, user).await?)
}
