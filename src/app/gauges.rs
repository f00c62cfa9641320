//! The node's gauges that are read rather than counted: whether the database and Redis
//! answer, and each tenant's inbox lag. One task refreshes them every [`REFRESH`] (a
//! ping each and one grouped query), so a scrape costs no database round trip.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use nexus_proto::TenantId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::presence::Presence;
use crate::store::Store;
use crate::telemetry::catalog;

const REFRESH: Duration = Duration::from_secs(5);
/// A check not answered within this counts as down (as `/ready`'s does).
const PATIENCE: Duration = Duration::from_millis(1500);

/// Starts the refresher. `redis` is the cluster profile's presence; the embedded
/// profile has no Redis series. The node just reached both while starting.
pub(super) fn start(
    store: Store,
    redis: Option<Arc<dyn Presence>>,
    tracker: &TaskTracker,
    stop: CancellationToken,
) {
    set_up("database", true);
    if redis.is_some() {
        set_up("redis", true);
    }
    tracker.spawn(async move {
        let mut tenants = HashSet::new();
        loop {
            refresh(&store, redis.as_deref(), &mut tenants).await;
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

async fn refresh(store: &Store, redis: Option<&dyn Presence>, tenants: &mut HashSet<TenantId>) {
    let database = tokio::time::timeout(PATIENCE, store.ping()).await;
    set_up("database", matches!(database, Ok(Ok(()))));
    if let Some(presence) = redis {
        let pinged = tokio::time::timeout(PATIENCE, presence.ping()).await;
        set_up("redis", matches!(pinged, Ok(Ok(()))));
    }
    let Ok(Ok(lags)) = tokio::time::timeout(PATIENCE, store.inbox_lag_by_tenant()).await else {
        return;
    };
    let mut seen = HashSet::with_capacity(lags.len());
    for (tenant, lag) in lags {
        metrics::gauge!(catalog::INBOX_LAG_MAX, "tenant" => tenant.to_string()).set(lag as f64);
        if tenants.insert(tenant) {
            // The tenant's socket gauge exists (at 0) before its first agent connects.
            metrics::gauge!(catalog::TENANT_WS_CONNECTIONS, "tenant" => tenant.to_string())
                .increment(0.0);
        }
        seen.insert(tenant);
    }
    // A tenant deleted, or left with no active agent, reads 0 rather than its last lag.
    for gone in tenants.iter().filter(|t| !seen.contains(t)) {
        metrics::gauge!(catalog::INBOX_LAG_MAX, "tenant" => gone.to_string()).set(0.0);
    }
}

fn set_up(dependency: &'static str, up: bool) {
    metrics::gauge!(catalog::DEPENDENCY_UP, "dependency" => dependency)
        .set(f64::from(u8::from(up)));
}
