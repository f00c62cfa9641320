//! Operator actions, one function each, shared by the CLI and the operator API.

mod actor;
mod alerts;
mod jobs;
mod mirror;
pub mod overview;
mod sources;
mod tenants;
pub mod usage;

pub use actor::Actor;
pub use alerts::{AlertSpec, CreatedAlert, add_alert, remove_alert};
pub use jobs::{cancel_job, delete_job, replay_jobs, reschedule_job};
pub use mirror::{
    MappingSpec, add_alias, add_identity, add_mapping, move_identity, remove_alias,
    remove_identity, remove_mapping, set_alias_agents, update_mapping,
};
pub use sources::{SourceSpec, add_source, remove_source, rotate_source};
pub use tenants::{
    create_tenant, delete_tenant, set_tenant_status, set_tenant_tools, update_tenant,
};

use nexus_proto::{AgentId, ClickUpUserId, SlackUserId, TenantId};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::auth::{IssuedToken, JwtKeys, secrets};
use crate::config::Tiers;
use crate::presence::PresenceEntry;
use crate::quota::{Quota, Refusal};
use crate::store::{
    Agent, AgentChange, AgentStatus, NewAgent, OperatorKey, Scopes, Store, StoreError,
};
use crate::time::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    /// One field of the request is wrong (the API names it in `details`).
    #[error("{field}: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
    /// The action does not apply to the target as it is now (cancelling a running job).
    #[error("{0}")]
    Conflict(String),
    /// Over the tenant's tier (agents per tenant).
    #[error("{}", .0.message())]
    Quota(Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An online agent as operators see it (API and CLI): its presence entry and name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OnlineAgent {
    #[serde(flatten)]
    pub entry: PresenceEntry,
    pub name: Option<String>,
}

/// Names the tenant's online `entries` (read from presence by the caller).
pub async fn online_agents(
    store: &Store,
    tenant: TenantId,
    entries: Vec<PresenceEntry>,
) -> Result<Vec<OnlineAgent>, AdminError> {
    let mut names: std::collections::HashMap<AgentId, String> = store
        .list_agents(tenant)
        .await?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect();
    Ok(entries
        .into_iter()
        .map(|entry| OnlineAgent {
            name: names.remove(&entry.agent_id),
            entry,
        })
        .collect())
}

/// An agent with its client secret: returned at creation and rotation only. No `Debug`:
/// it holds the secret.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentWithSecret {
    #[serde(flatten)]
    pub agent: Agent,
    pub client_secret: String,
}

/// No `Debug`: it holds the key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: OperatorKey,
    /// The key itself; only its hash is stored.
    #[serde(rename = "key")]
    pub secret: String,
}

impl AdminError {
    pub fn field(field: &'static str, message: impl Into<String>) -> AdminError {
        AdminError::Field {
            field,
            message: message.into(),
        }
    }
}

/// Names are shown to operators and used in aliases: printable, 1–100 characters.
fn check_name(field: &'static str, name: &str) -> Result<(), AdminError> {
    let len = name.chars().count();
    if len == 0 || len > 100 || name.chars().any(char::is_control) || name.trim() != name {
        return Err(AdminError::field(
            field,
            "must be 1–100 printable characters without surrounding spaces",
        ));
    }
    Ok(())
}

pub struct AgentSpec {
    pub name: String,
    pub clickup_user: Option<ClickUpUserId>,
    pub slack_user: Option<SlackUserId>,
}

/// Creates agents in one transaction. Secrets are hashed in parallel on blocking
/// threads (argon2 is slow by design), so bulk provisioning scales with cores.
/// The tenant's tier caps how many agents it may hold.
pub async fn create_agents(
    store: &Store,
    tiers: &Tiers,
    actor: &Actor,
    tenant: TenantId,
    specs: Vec<AgentSpec>,
) -> Result<Vec<AgentWithSecret>, AdminError> {
    for spec in &specs {
        check_name("name", &spec.name)?;
    }
    let tier = tiers.get(&store.get_tenant(tenant).await?.tier);
    let prepared = tokio::task::spawn_blocking(move || {
        specs
            .into_par_iter()
            .map(|spec| {
                let secret = secrets::generate_client_secret();
                let new = NewAgent {
                    tenant_id: tenant,
                    name: spec.name,
                    client_id: secrets::generate_client_id(),
                    client_secret_hash: secrets::hash_secret(&secret),
                    clickup_user: spec.clickup_user,
                    slack_user: spec.slack_user,
                };
                (new, secret)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))?;
    let (new, secrets): (Vec<NewAgent>, Vec<String>) = prepared.into_iter().unzip();
    let agents = match store.create_agents(new, tier.agents).await {
        Err(StoreError::OverLimit) => {
            let refusal = Refusal {
                quota: Quota::Agents,
                tier: tier.name.clone(),
                limit: tier.agents.unwrap_or_default(),
                retry_after: None,
            };
            return Err(AdminError::Quota(refusal.counted(tenant)));
        }
        created => created?,
    };
    // One record for a bulk creation; the first ids name what was made.
    let target = match agents.as_slice() {
        [one] => one.id.to_string(),
        _ => tenant.to_string(),
    };
    let ids: Vec<AgentId> = agents.iter().take(100).map(|a| a.id).collect();
    let details = json!({ "count": agents.len(), "agent_ids": ids });
    let audit = actor.audit(Some(tenant), "agent.create", target, details);
    store.record_audit(&audit).await?;
    Ok(agents
        .into_iter()
        .zip(secrets)
        .map(|(agent, client_secret)| AgentWithSecret {
            agent,
            client_secret,
        })
        .collect())
}

pub async fn rotate_secret(
    store: &Store,
    actor: &Actor,
    agent: AgentId,
) -> Result<AgentWithSecret, AdminError> {
    let secret = secrets::generate_client_secret();
    let to_hash = secret.clone();
    let hash = tokio::task::spawn_blocking(move || secrets::hash_secret(&to_hash))
        .await
        .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))?;
    let agent = store.set_agent_secret_hash(agent, &hash).await?;
    record_on_agent(store, actor, &agent, "agent.rotate_secret").await?;
    Ok(AgentWithSecret {
        agent,
        client_secret: secret,
    })
}

/// The agent, if it is `tenant`'s. An agent of another tenant gets the same answer as
/// one that does not exist: whether an id exists elsewhere is none of the caller's business.
pub(crate) async fn agent_of(
    store: &Store,
    tenant: TenantId,
    agent: AgentId,
) -> Result<Agent, AdminError> {
    match store.get_agent(agent).await {
        Ok(found) if found.tenant_id == tenant => Ok(found),
        Ok(_) | Err(StoreError::NotFound(_)) => Err(AdminError::Invalid(format!(
            "agent {agent} is not an agent of this tenant"
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn record_on_agent(
    store: &Store,
    actor: &Actor,
    agent: &Agent,
    action: &'static str,
) -> Result<(), AdminError> {
    let audit = actor.audit(Some(agent.tenant_id), action, agent.id, json!({}));
    Ok(store.record_audit(&audit).await?)
}

/// Disables or enables the agent. The caller closes its live session on its node at
/// once; other nodes close it within `--reconcile-interval`.
pub async fn set_agent_status(
    store: &Store,
    actor: &Actor,
    agent: AgentId,
    status: AgentStatus,
) -> Result<Agent, AdminError> {
    let agent = store.set_agent_status(agent, status).await?;
    let action = match status {
        AgentStatus::Active => "agent.enable",
        AgentStatus::Disabled => "agent.disable",
    };
    record_on_agent(store, actor, &agent, action).await?;
    Ok(agent)
}

/// Renames the agent or sets its ClickUp and Slack users.
pub async fn update_agent(
    store: &Store,
    actor: &Actor,
    agent: AgentId,
    change: AgentChange,
) -> Result<Agent, AdminError> {
    if change.name.is_none() && change.clickup_user.is_none() && change.slack_user.is_none() {
        return Err(AdminError::field(
            "name",
            "give a name, clickup_user or slack_user to change",
        ));
    }
    if let Some(name) = &change.name {
        check_name("name", name)?;
    }
    let tenant = store.get_agent(agent).await?.tenant_id;
    let details = json!({
        "name": change.name,
        "clickup_user": change.clickup_user.as_ref().map(|u| u.as_ref().map(|u| u.as_str().to_owned())),
        "slack_user": change.slack_user.as_ref().map(|u| u.as_ref().map(|u| u.as_str().to_owned())),
    });
    let audit = actor.audit(Some(tenant), "agent.update", agent, details);
    Ok(store.update_agent_profile(agent, &change, &audit).await?)
}

/// What `nexus agent revoke-tokens` reports.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedTokens {
    pub agent_id: AgentId,
    /// Tokens issued before this are refused at connect and refresh; live sessions
    /// holding one are closed with 4001 within the reconcile interval.
    #[serde(with = "crate::time::ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub tokens_valid_after: i64,
}

/// Every token issued up to this millisecond is revoked (the `+ 1`: a token from the
/// same millisecond may predate the call).
pub async fn revoke_tokens(
    store: &Store,
    actor: &Actor,
    agent: AgentId,
) -> Result<RevokedTokens, AdminError> {
    let agent = store.revoke_agent_tokens(agent, now_ms() + 1).await?;
    record_on_agent(store, actor, &agent, "agent.revoke_tokens").await?;
    Ok(RevokedTokens {
        agent_id: agent.id,
        tokens_valid_after: agent.tokens_valid_after,
    })
}

pub async fn create_operator_key(
    store: &Store,
    actor: &Actor,
    name: &str,
    scopes: Scopes,
    tenant: Option<TenantId>,
) -> Result<CreatedKey, AdminError> {
    check_name("name", name)?;
    let secret = secrets::generate_operator_key();
    let key = store
        .create_operator_key(name, scopes, tenant, &secrets::hash_operator_key(&secret))
        .await?;
    let details = json!({ "name": name, "scopes": key.scopes });
    let audit = actor.audit(tenant, "key.create", key.id, details);
    store.record_audit(&audit).await?;
    Ok(CreatedKey { key, secret })
}

/// Revokes a key; `within` (a tenant-bound caller's tenant) limits which.
pub async fn revoke_operator_key(
    store: &Store,
    actor: &Actor,
    id: uuid::Uuid,
    within: Option<TenantId>,
) -> Result<OperatorKey, AdminError> {
    let key = store.revoke_operator_key(id, within).await?;
    let details = json!({ "name": key.name });
    let audit = actor.audit(key.tenant_id, "key.revoke", key.id, details);
    store.record_audit(&audit).await?;
    Ok(key)
}

/// An operator mints a token for an agent directly (debugging, load tests).
pub async fn mint_token(
    store: &Store,
    actor: &Actor,
    keys: &JwtKeys,
    agent: AgentId,
) -> Result<IssuedToken, AdminError> {
    let agent = store.get_agent(agent).await?;
    if agent.status != AgentStatus::Active {
        return Err(AdminError::Invalid("agent is disabled".into()));
    }
    record_on_agent(store, actor, &agent, "agent.mint_token").await?;
    Ok(keys.issue(agent.id, agent.tenant_id, &agent.client_id))
}
