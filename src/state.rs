//! What the HTTP handlers reach. Each extracts only its part where it can (`FromRef`):
//! the gateway its [`Gateway`], the token endpoint the [`Authenticator`], the
//! operator-key extractor the [`OperatorKeys`].

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRef;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, OperatorKeys};
use crate::bus::Hub;
use crate::config::Config;
use crate::context::Context;
use crate::gateway::Gateway;
use crate::queue::Queue;
use crate::quota::Quotas;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::time::Clock;

pub struct Shared {
    pub store: Store,
    pub hub: Arc<Hub>,
    /// Tenant tiers' rate limits and the tenant → tier cache.
    pub quotas: Arc<Quotas>,
    /// What job processors reach, with the read-through caches handlers share.
    pub ctx: Arc<Context>,
    pub auth: Arc<Authenticator>,
    pub operator_keys: Arc<OperatorKeys>,
    pub gateway: Arc<Gateway>,
    pub queue: Arc<Queue>,
    /// The node's time (tests move a `ManualClock`): Slack's timestamp window, job times.
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub node_id: String,
    /// The cluster profile's Redis connections (presence and routing use them).
    pub redis: Option<crate::redis::Redis>,
    pub config: Config,
    /// Cancelled when the node starts shutting down: sessions close with 1012.
    pub shutdown: CancellationToken,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for Arc<Gateway> {
    fn from_ref(state: &AppState) -> Self {
        state.gateway.clone()
    }
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<AppState> for Arc<OperatorKeys> {
    fn from_ref(state: &AppState) -> Self {
        state.operator_keys.clone()
    }
}
