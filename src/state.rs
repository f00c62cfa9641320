//! What every request handler and session can reach.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::bus::Hub;
use crate::cache::TtlCache;
use crate::config::Config;
use crate::providers::Providers;
use crate::queue::{Processors, Queue};
use crate::store::{Agent, OperatorKey, ProjectMapping, Source, Store, StoreError};
use crate::tools::ToolRegistry;
use nexus_proto::{AgentId, TenantId};

pub struct Shared {
    pub store: Store,
    pub auth: Authenticator,
    pub hub: Arc<Hub>,
    pub tools: ToolRegistry,
    pub queue: Arc<Queue>,
    pub processors: Processors,
    pub providers: Providers,
    /// Agents by id, for the emit API (see [`crate::cache`]).
    pub agents: TtlCache<AgentId, Agent>,
    /// Operator keys by hash, for every operator API request.
    pub operator_keys: TtlCache<String, OperatorKey>,
    /// Webhook sources by id: read when a webhook arrives and again by its job.
    pub sources: TtlCache<uuid::Uuid, Source>,
    /// Project mappings by ClickUp list, read by every ClickUp webhook job.
    pub mappings: TtlCache<(TenantId, String), ProjectMapping>,
    pub metrics: PrometheusHandle,
    pub node_id: String,
    /// The cluster profile's Redis connections (presence and routing use them).
    pub redis: Option<crate::redis::Redis>,
    pub config: Config,
    /// Cancelled when the node starts shutting down: sessions close with 1012.
    pub shutdown: CancellationToken,
    /// Agent sessions, so shutdown can wait for them to say goodbye.
    pub sessions_tracker: TaskTracker,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
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
        list: &str,
    ) -> Result<Option<ProjectMapping>, StoreError> {
        let load = self.store.mapping_for_list(tenant, list);
        self.mappings
            .get_or_load(&(tenant, list.to_owned()), load)
            .await
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
