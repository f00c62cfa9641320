//! What job processors and tools reach: storage, the hub, the provider clients and the
//! read-through caches in front of rows read on every job. Narrow on purpose: no HTTP
//! state, no configuration, no queue.

use std::sync::Arc;
use std::time::Duration;

use nexus_proto::{AgentId, ClickUpListId, TenantId};

use crate::bus::Hub;
use crate::cache::TtlCache;
use crate::providers::{ProviderError, Providers};
use crate::queue::JobError;
use crate::store::{Agent, ProjectMapping, Source, Store, StoreError};

pub struct Context {
    pub store: Store,
    pub hub: Arc<Hub>,
    pub providers: Providers,
    /// Agents by id, for the emit API and recipients' status (see [`crate::cache`]).
    agents: TtlCache<AgentId, Agent>,
    /// Webhook sources by id: read when a webhook arrives and again by its job.
    sources: TtlCache<uuid::Uuid, Source>,
    /// Project mappings by ClickUp list, read by every ClickUp webhook job.
    mappings: TtlCache<(TenantId, ClickUpListId), ProjectMapping>,
}

impl Context {
    pub fn new(store: Store, hub: Arc<Hub>, providers: Providers, cache_ttl: Duration) -> Self {
        Context {
            store,
            hub,
            providers,
            agents: TtlCache::new(cache_ttl),
            sources: TtlCache::new(cache_ttl),
            mappings: TtlCache::new(cache_ttl),
        }
    }

    /// The agent, from the cache when it was read within the cache TTL.
    pub async fn agent(&self, id: AgentId) -> Result<Agent, StoreError> {
        let load = async { found(self.store.get_agent(id).await) };
        let agent = self.agents.get_or_load(&id, load).await?;
        agent.ok_or(StoreError::NotFound("agent"))
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

    /// A mapping was removed through this node: forget them all at once.
    pub fn forget_mappings(&self) {
        self.mappings.clear();
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
