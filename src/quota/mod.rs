//! Tenant tiers and the quotas they set: agents and concurrent sockets per tenant,
//! events emitted per second per tenant, webhooks per second per source, and how long
//! an inbox keeps an event. Counts (agents, sockets) are checked where the row or the
//! presence entry is written, atomically; rates are token buckets held here.
//!
//! Rates are per node: in a cluster of N nodes behind a balancer a tenant can reach N
//! times its tier's rate (the README says so). A shared bucket would cost a Redis
//! round trip per emitted event.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota as Gcra, RateLimiter};
use nexus_proto::TenantId;
use uuid::Uuid;

use crate::cache::TtlCache;
use crate::config::{Rate, Tier, Tiers};
use crate::store::{Store, StoreError};
use crate::telemetry::catalog;

/// Which limit refused: the `quota` label of `nexus_quota_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Agents,
    Sockets,
    Events,
    Webhooks,
}

impl Quota {
    pub const ALL: [Quota; 4] = [
        Quota::Agents,
        Quota::Sockets,
        Quota::Events,
        Quota::Webhooks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Quota::Agents => "agents",
            Quota::Sockets => "sockets",
            Quota::Events => "events",
            Quota::Webhooks => "webhooks",
        }
    }
}

/// `nexus_quota_refusals_total{tenant, quota}`.
pub fn count_refusal(tenant: TenantId, quota: Quota) {
    let labels = [
        ("tenant", tenant.to_string()),
        ("quota", quota.as_str().to_owned()),
    ];
    metrics::counter!(catalog::QUOTA_REFUSALS, &labels).increment(1);
}

/// A request over its tenant's tier. `retry_after` is set for rates (when a token
/// will be there), not for counts (nothing frees up by waiting).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub quota: Quota,
    pub tier: String,
    pub limit: u32,
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// Counts the refusal in `/metrics` and returns it.
    pub fn counted(self, tenant: TenantId) -> Refusal {
        count_refusal(tenant, self.quota);
        self
    }

    pub fn message(&self) -> String {
        let what = match self.quota {
            Quota::Agents => "agents per tenant",
            Quota::Sockets => "concurrent sockets per tenant",
            Quota::Events => "events per second per tenant",
            Quota::Webhooks => "webhooks per second per source",
        };
        format!(
            "the tenant's tier {:?} allows {} {what}",
            self.tier, self.limit
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("{}", .0.message())]
    Refused(Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Bucket {
    tier: Arc<str>,
    limiter: DefaultDirectRateLimiter,
}

pub struct Quotas {
    tiers: Arc<Tiers>,
    store: Store,
    /// Each tenant's tier name, read through (a change elsewhere is seen within the
    /// cache TTL; a change through this node at once).
    tenant_tiers: TtlCache<TenantId, Arc<str>>,
    events: DashMap<TenantId, Bucket>,
    webhooks: DashMap<Uuid, Bucket>,
    default_retention: Duration,
}

impl Quotas {
    pub fn new(
        tiers: Arc<Tiers>,
        store: Store,
        cache_ttl: Duration,
        default_retention: Duration,
    ) -> Quotas {
        Quotas {
            tiers,
            store,
            tenant_tiers: TtlCache::new(cache_ttl),
            events: DashMap::new(),
            webhooks: DashMap::new(),
            default_retention,
        }
    }

    pub fn tiers(&self) -> &Tiers {
        &self.tiers
    }

    /// The tenant's tier (the default's limits for a tier name no longer configured).
    pub async fn tier_of(&self, tenant: TenantId) -> Result<&Tier, StoreError> {
        let name = self
            .tenant_tiers
            .get_or_load(&tenant, async {
                match self.store.get_tenant(tenant).await {
                    Ok(t) => Ok(Some(Arc::<str>::from(t.tier))),
                    Err(StoreError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?
            .ok_or(StoreError::NotFound("tenant"))?;
        Ok(self.tiers.get(&name))
    }

    /// The tenant's tier changed (or it was deleted) through this node.
    pub fn forget(&self, tenant: TenantId) {
        self.tenant_tiers.invalidate(&tenant);
        self.events.remove(&tenant);
    }

    /// How long the tenant's events stay in an inbox.
    pub async fn inbox_retention(&self, tenant: TenantId) -> Result<Duration, StoreError> {
        let tier = self.tier_of(tenant).await?;
        Ok(tier
            .inbox_retention_s
            .map_or(self.default_retention, Duration::from_secs))
    }

    /// Takes `n` events from the tenant's bucket, or says when to come back.
    pub async fn admit_events(&self, tenant: TenantId, n: u32) -> Result<(), QuotaError> {
        let tier = self.tier_of(tenant).await?;
        take(&self.events, tenant, tier, tier.events, Quota::Events, n)
            .map_err(|r| QuotaError::Refused(r.counted(tenant)))
    }

    /// Takes one webhook from the source's bucket (the limit is its tenant's tier's).
    pub async fn admit_webhook(&self, tenant: TenantId, source: Uuid) -> Result<(), QuotaError> {
        let tier = self.tier_of(tenant).await?;
        take(
            &self.webhooks,
            source,
            tier,
            tier.webhooks,
            Quota::Webhooks,
            1,
        )
        .map_err(|r| QuotaError::Refused(r.counted(tenant)))
    }
}

fn take<K: std::hash::Hash + Eq>(
    buckets: &DashMap<K, Bucket>,
    key: K,
    tier: &Tier,
    rate: Option<Rate>,
    quota: Quota,
    n: u32,
) -> Result<(), Refusal> {
    let Some(rate) = rate else {
        return Ok(());
    };
    let refusal = |retry_after| Refusal {
        quota,
        tier: tier.name.clone(),
        limit: rate.per_second.get(),
        retry_after: Some(retry_after),
    };
    let Some(cells) = std::num::NonZeroU32::new(n) else {
        return Ok(());
    };
    let mut bucket = buckets.entry(key).or_insert_with(|| new_bucket(tier, rate));
    // A tenant moved to another tier starts a bucket of the new size.
    if *bucket.tier != *tier.name {
        *bucket = new_bucket(tier, rate);
    }
    match bucket.limiter.check_n(cells) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(refusal(
            not_until.wait_time_from(DefaultClock::default().now()),
        )),
        // More at once than the bucket holds: never admitted, whatever the wait.
        Err(_) => Err(refusal(Duration::from_secs(1))),
    }
}

fn new_bucket(tier: &Tier, rate: Rate) -> Bucket {
    Bucket {
        tier: tier.name.as_str().into(),
        limiter: RateLimiter::direct(Gcra::per_second(rate.per_second).allow_burst(rate.burst)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Tiers {
        Tiers::parse(
            "default = \"a\"\n[tiers.a]\nevents_per_second = 1\nevents_burst = 3\n[tiers.b]\nevents_per_second = 1\nevents_burst = 5\n",
        )
        .expect("tiers")
    }

    #[test]
    fn a_bucket_admits_its_burst_then_says_when_to_come_back() {
        let (tiers, buckets) = (tiers(), DashMap::new());
        let a = tiers.get("a");
        for _ in 0..3 {
            assert_eq!(take(&buckets, 1, a, a.events, Quota::Events, 1), Ok(()));
        }
        let refused = take(&buckets, 1, a, a.events, Quota::Events, 1).expect_err("over");
        assert_eq!((refused.quota, refused.limit), (Quota::Events, 1));
        let wait = refused.retry_after.expect("a rate says when");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another key has its own bucket; more at once than a bucket holds never passes.
        assert_eq!(take(&buckets, 2, a, a.events, Quota::Events, 3), Ok(()));
        assert!(take(&buckets, 3, a, a.events, Quota::Events, 4).is_err());
    }

    #[test]
    fn a_tenant_moved_to_another_tier_gets_that_tiers_bucket() {
        let (tiers, buckets) = (tiers(), DashMap::new());
        let (a, b) = (tiers.get("a"), tiers.get("b"));
        assert_eq!(take(&buckets, 1, a, a.events, Quota::Events, 3), Ok(()));
        assert!(take(&buckets, 1, a, a.events, Quota::Events, 1).is_err());
        assert_eq!(take(&buckets, 1, b, b.events, Quota::Events, 5), Ok(()));
    }
}
