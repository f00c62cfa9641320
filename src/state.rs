//! What every request handler and session can reach.

use std::ops::Deref;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::bus::Hub;
use crate::config::Config;
use crate::providers::Providers;
use crate::queue::{Processors, Queue};
use crate::store::Store;
use crate::tools::ToolRegistry;

pub struct Shared {
    pub store: Store,
    pub auth: Authenticator,
    pub hub: Arc<Hub>,
    pub tools: ToolRegistry,
    pub queue: Arc<Queue>,
    pub processors: Processors,
    pub providers: Providers,
    pub metrics: PrometheusHandle,
    pub node_id: String,
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
