//! Operator actions, one function each, shared by the CLI and the operator API.

mod mirror;
pub mod overview;

pub use mirror::{MappingSpec, add_alias, add_identity, add_mapping};

use nexus_proto::{AgentId, ClickUpUserId, EventType, SlackUserId, TenantId};
use rayon::prelude::*;
use serde::Serialize;

use crate::auth::{IssuedToken, JwtKeys, secrets};
use crate::presence::PresenceEntry;
use crate::store::{
    Agent, AgentStatus, IngestRule, NewAgent, NewSource, OperatorKey, Scopes, Secret, Source,
    SourceKind, Store, StoreError, Tenant, ToolScope,
};
use crate::time::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
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
#[derive(Serialize)]
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

/// Names are shown to operators and used in aliases: printable, 1–100 characters.
fn check_name(what: &str, name: &str) -> Result<(), AdminError> {
    let len = name.chars().count();
    if len == 0 || len > 100 || name.chars().any(char::is_control) || name.trim() != name {
        return Err(AdminError::Invalid(format!(
            "{what} must be 1–100 printable characters without surrounding spaces"
        )));
    }
    Ok(())
}

pub async fn create_tenant(store: &Store, name: &str) -> Result<Tenant, AdminError> {
    check_name("tenant name", name)?;
    Ok(store.create_tenant(name).await?)
}

/// What the tenant's agents may do with tools (see the README's `## Security`).
pub async fn set_tenant_tools(
    store: &Store,
    tenant: TenantId,
    scope: Option<ToolScope>,
    allow_broadcasts: Option<bool>,
) -> Result<Tenant, AdminError> {
    if scope.is_none() && allow_broadcasts.is_none() {
        return Err(AdminError::Invalid(
            "nothing to change: give a tool scope or allow_broadcasts".into(),
        ));
    }
    Ok(store
        .set_tenant_tools(tenant, scope, allow_broadcasts)
        .await?)
}

pub struct AgentSpec {
    pub name: String,
    pub clickup_user: Option<ClickUpUserId>,
    pub slack_user: Option<SlackUserId>,
}

/// Creates agents in one transaction. Secrets are hashed in parallel on blocking
/// threads (argon2 is slow by design), so bulk provisioning scales with cores.
pub async fn create_agents(
    store: &Store,
    tenant: TenantId,
    specs: Vec<AgentSpec>,
) -> Result<Vec<AgentWithSecret>, AdminError> {
    for spec in &specs {
        check_name("agent name", &spec.name)?;
    }
    store.get_tenant(tenant).await?;
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
    let agents = store.create_agents(new).await?;
    Ok(agents
        .into_iter()
        .zip(secrets)
        .map(|(agent, client_secret)| AgentWithSecret {
            agent,
            client_secret,
        })
        .collect())
}

pub async fn rotate_secret(store: &Store, agent: AgentId) -> Result<AgentWithSecret, AdminError> {
    let secret = secrets::generate_client_secret();
    let to_hash = secret.clone();
    let hash = tokio::task::spawn_blocking(move || secrets::hash_secret(&to_hash))
        .await
        .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))?;
    let agent = store.set_agent_secret_hash(agent, &hash).await?;
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

pub async fn set_agent_status(
    store: &Store,
    agent: AgentId,
    status: AgentStatus,
) -> Result<Agent, AdminError> {
    Ok(store.set_agent_status(agent, status).await?)
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
pub async fn revoke_tokens(store: &Store, agent: AgentId) -> Result<RevokedTokens, AdminError> {
    let agent = store.revoke_agent_tokens(agent, now_ms() + 1).await?;
    Ok(RevokedTokens {
        agent_id: agent.id,
        tokens_valid_after: agent.tokens_valid_after,
    })
}

pub async fn create_operator_key(
    store: &Store,
    name: &str,
    scopes: Scopes,
    tenant: Option<TenantId>,
) -> Result<CreatedKey, AdminError> {
    check_name("key name", name)?;
    let secret = secrets::generate_operator_key();
    let key = store
        .create_operator_key(name, scopes, tenant, &secrets::hash_operator_key(&secret))
        .await?;
    Ok(CreatedKey { key, secret })
}

/// An operator mints a token for an agent directly (debugging, load tests).
pub async fn mint_token(
    store: &Store,
    keys: &JwtKeys,
    agent: AgentId,
) -> Result<IssuedToken, AdminError> {
    let agent = store.get_agent(agent).await?;
    if agent.status != AgentStatus::Active {
        return Err(AdminError::Invalid("agent is disabled".into()));
    }
    Ok(keys.issue(agent.id, agent.tenant_id, &agent.client_id))
}

/// What `nexus source add` registers.
pub struct SourceSpec {
    pub tenant: TenantId,
    pub kind: SourceKind,
    /// Slack team id, ClickUp webhook id, or the ingest source's name.
    pub external_id: String,
    pub secret: String,
    pub api_token: Option<String>,
    pub bot_user: Option<String>,
    pub to_agent: Option<AgentId>,
    pub to_alias: Option<String>,
    pub event: Option<EventType>,
}

pub async fn add_source(store: &Store, spec: SourceSpec) -> Result<Source, AdminError> {
    check_name("source id", &spec.external_id)?;
    if spec.secret.len() < 8 {
        return Err(AdminError::Invalid(
            "the secret must be at least 8 characters".into(),
        ));
    }
    let rule = match spec.kind {
        SourceKind::Ingest => {
            if spec.to_agent.is_none() && spec.to_alias.is_none() {
                return Err(AdminError::Invalid(
                    "an ingest source needs --to-agent or --to-alias".into(),
                ));
            }
            if let Some(agent) = spec.to_agent {
                agent_of(store, spec.tenant, agent).await?;
            }
            let event = spec.event.unwrap_or(EventType::WakeUp);
            if !matches!(event, EventType::WakeUp | EventType::ContextUpdate) {
                return Err(AdminError::Invalid(
                    "--event-type must be wake_up or context_update".into(),
                ));
            }
            Some(IngestRule {
                to_agent: spec.to_agent,
                to_alias: spec.to_alias.map(|a| a.trim_start_matches('@').to_owned()),
                event,
            })
        }
        _ => None,
    };
    store.get_tenant(spec.tenant).await?;
    Ok(store
        .create_source(NewSource {
            tenant_id: spec.tenant,
            kind: spec.kind,
            external_id: spec.external_id,
            secret: Secret::new(spec.secret),
            api_token: spec.api_token.map(Secret::new),
            bot_user: spec.bot_user,
            rule,
        })
        .await?)
}
