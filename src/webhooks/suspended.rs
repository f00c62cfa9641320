//! Webhooks of a suspended tenant: answered 200 (a provider that sees errors disables
//! the webhook) but not processed. Each is kept as a dead job with reason
//! `tenant_suspended`, so an operator sees why nothing happened and can replay it once
//! the tenant is resumed; counted in `nexus_webhooks_dropped_total` and logged.

use super::{Received, Rejection};
use crate::state::AppState;
use crate::store::{Source, TenantStatus};
use crate::telemetry::catalog;

pub(super) const REASON: &str = "tenant_suspended";

/// Whether the source's tenant is suspended (as cached within `--cache-ttl`).
pub(super) async fn is_suspended(state: &AppState, source: &Source) -> Result<bool, Rejection> {
    let tenant = state.ctx.tenant(source.tenant_id).await?;
    Ok(tenant.status == TenantStatus::Suspended)
}

/// Makes the just-stored job dead with the reason; a duplicate delivery keeps its job
/// as it is.
pub(super) async fn drop_job(
    state: &AppState,
    source: &Source,
    received: Received,
) -> Result<Received, Rejection> {
    let job_id = match received {
        Received::Accepted { job_id } => {
            let message = "not processed: the tenant is suspended (replay it once resumed)";
            let now = state.clock.now_ms();
            state.store.bury_job(job_id, REASON, message, now).await?;
            job_id
        }
        Received::Duplicate { job_id } => job_id,
        other => return Ok(other),
    };
    tracing::info!(
        tenant_id = %source.tenant_id,
        source_id = %source.id,
        %job_id,
        "webhook dropped: the tenant is suspended"
    );
    let labels = [("source", source.kind.as_str()), ("reason", REASON)];
    metrics::counter!(catalog::WEBHOOKS_DROPPED, &labels).increment(1);
    Ok(Received::Dropped {
        job_id,
        reason: REASON,
    })
}
