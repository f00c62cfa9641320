//! What job processors and tools reach: storage, the hub, the provider clients and the
//! read-through caches in front of rows read on every job. Narrow on purpose: no HTTP
//! state, no configuration, no queue.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use nexus_proto::{AgentId, ClickUpListId, SlackChannelId, TenantId};
use uuid::Uuid;

use crate::bus::Hub;
use crate::cache::TtlCache;
use crate::providers::{ProviderError, Providers};
use crate::queue::JobError;
use crate::store::{Agent, ProjectMapping, Source, Store, StoreError, Tenant, ToolScope};

pub struct Context {
    pub store: Store,
    pub hub: Arc<Hub>,
    pub providers: Providers,
    /// Agents by id, for the emit API and recipients' status (see [`crate::cache`]).
    agents: TtlCache<AgentId, Agent>,
    /// Tenants by id: read when a webhook arrives (is the tenant suspended?).
    tenants: TtlCache<TenantId, Tenant>,
    /// Webhook sources by id: read when a webhook arrives and again by its job.
    sources: TtlCache<uuid::Uuid, Source>,
    /// Project mappings by ClickUp list, read by every ClickUp webhook job.
    mappings: TtlCache<(TenantId, ClickUpListId), ProjectMapping>,
    /// What each tenant's agents may reach with tools, read by every tool request.
    tool_policies: TtlCache<TenantId, Arc<ToolPolicy>>,
}

/// A tenant's tool settings and, in `mapped` scope, what its mappings cover.
#[derive(Debug)]
pub struct ToolPolicy {
    pub scope: ToolScope,
    pub allow_broadcasts: bool,
    /// The Slack channels of the tenant's project mappings.
    pub channels: HashSet<SlackChannelId>,
    /// The tenant's project mappings by id (a known task names its mapping).
    pub mappings: HashSet<Uuid>,
}

impl Context {
    pub fn new(store: Store, hub: Arc<Hub>, providers: Providers, cache_ttl: Duration) -> Self {
        Context {
            store,
            hub,
            providers,
            agents: TtlCache::new(cache_ttl),
            tenants: TtlCache::new(cache_ttl),
            sources: TtlCache::new(cache_ttl),
            mappings: TtlCache::new(cache_ttl),
            tool_policies: TtlCache::new(cache_ttl),
        }
    }

    /// The agent, from the cache when it was read within the cache TTL.
    pub async fn agent(&self, id: AgentId) -> Result<Agent, StoreError> {
        let load = async { found(self.store.get_agent(id).await) };
        let agent = self.agents.get_or_load(&id, load).await?;
        agent.ok_or(StoreError::NotFound("agent"))
    }

    /// Those of `ids` that exist, by id: cached ones from the cache, the rest read in
    /// one query per chunk (and cached), not a round trip each.
    pub async fn agents(&self, ids: &[AgentId]) -> Result<HashMap<AgentId, Agent>, StoreError> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut load = Vec::new();
        for id in ids {
            match self.agents.peek(id) {
                Some(Some(agent)) => {
                    found.insert(*id, agent);
                }
                Some(None) => {}
                None => load.push(*id),
            }
        }
        load.sort_unstable();
        load.dedup();
        if load.is_empty() {
            return Ok(found);
        }
        let mut loaded: HashMap<AgentId, Agent> = self
            .store
            .get_agents(&load)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        for id in load {
            let agent = loaded.remove(&id);
            self.agents.put(id, agent.clone());
            if let Some(agent) = agent {
                found.insert(id, agent);
            }
        }
        Ok(found)
    }

    /// The tenant, from the cache when it was read within the cache TTL.
    pub async fn tenant(&self, id: TenantId) -> Result<Tenant, StoreError> {
        let load = async { found(self.store.get_tenant(id).await) };
        let tenant = self.tenants.get_or_load(&id, load).await?;
        tenant.ok_or(StoreError::NotFound("tenant"))
    }

    /// An operator changed things through this node: what it cached of the tenant,
    /// its agents and its sources is read again (other nodes: within the cache TTL).
    pub fn forget_operator_changes(&self) {
        self.tenants.clear();
        self.agents.clear();
        self.sources.clear();
        self.forget_mappings();
    }

    /// The webhook source, from the cache when it was read within the cache TTL.
    pub async fn source(&self, id: uuid::Uuid) -> Result<Source, StoreError> {
        let load = async { found(self.store.get_source(id).await) };
        let source = self.sources.get_or_load(&id, load).await?;
        source.ok_or(StoreError::NotFound("source"))
    }

    /// The mapping of a ClickUp list, from the cache when read within the cache TTL.
    /// (An unmapped list is not cached: a new mapping takes effect at once.)
    pub async fn mapping_for_list(
        &self,
        tenant: TenantId,
        list: &ClickUpListId,
    ) -> Result<Option<ProjectMapping>, StoreError> {
        let load = self.store.mapping_for_list(tenant, list);
        self.mappings
            .get_or_load(&(tenant, list.clone()), load)
            .await
    }

    /// The tenant's tool policy, from the cache when read within the cache TTL.
    pub async fn tool_policy(&self, tenant: TenantId) -> Result<Arc<ToolPolicy>, StoreError> {
        let load = async {
            let Some(t) = found(self.store.get_tenant(tenant).await)? else {
                return Ok(None);
            };
            let mapped = match t.tool_scope {
                ToolScope::Mapped => self.store.list_mappings(tenant).await?,
                ToolScope::Any => Vec::new(),
            };
            Ok(Some(Arc::new(ToolPolicy {
                scope: t.tool_scope,
                allow_broadcasts: t.allow_broadcasts,
                channels: mapped.iter().map(|m| m.slack_channel_id.clone()).collect(),
                mappings: mapped.iter().map(|m| m.id).collect(),
            })))
        };
        let policy = self
            .tool_policies
            .get_or_load::<StoreError, _>(&tenant, load)
            .await?;
        policy.ok_or(StoreError::NotFound("tenant"))
    }

    /// A mapping was added or removed through this node: forget them all at once.
    pub fn forget_mappings(&self) {
        self.mappings.clear();
        self.tool_policies.clear();
    }
}

/// `NotFound` as `None`, so a missing row is not cached.
fn found<T>(read: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match read {
        Ok(row) => Ok(Some(row)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl From<ProviderError> for JobError {
    fn from(e: ProviderError) -> JobError {
        match e {
            ProviderError::Transient { retry_after_ms, .. } => JobError::Transient {
                message: e.to_string(),
                retry_after_ms,
            },
            ProviderError::Permanent { .. } => {
                JobError::permanent("provider_rejected", e.to_string())
            }
        }
    }
}
