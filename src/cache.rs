//! Read-through caches for rows read on every request (operator keys, agents), so the
//! hot paths (emit API, webhooks, connects) skip a database round trip per request.
//!
//! Hand-rolled over `dashmap` rather than a cache crate: entries are bounded by the rows
//! they mirror (agents, keys), so no eviction policy is needed, only an age limit.
//! A change made elsewhere (an agent disabled, a key revoked by another process) is
//! seen within `ttl`; changes made through this node invalidate at once.

use std::hash::Hash;
use std::time::{Duration, Instant};

use dashmap::DashMap;

pub struct TtlCache<K, V> {
    map: DashMap<K, (V, Instant)>,
    ttl: Duration,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> TtlCache<K, V> {
        TtlCache {
            map: DashMap::new(),
            ttl,
        }
    }

    /// The cached value while fresh; otherwise `load`'s, cached when it found one.
    pub async fn get_or_load<E, F>(&self, key: &K, load: F) -> Result<Option<V>, E>
    where
        F: Future<Output = Result<Option<V>, E>>,
    {
        if let Some(entry) = self.map.get(key)
            && entry.1.elapsed() < self.ttl
        {
            return Ok(Some(entry.0.clone()));
        }
        let loaded = load.await?;
        match &loaded {
            Some(v) if !self.ttl.is_zero() => {
                self.map.insert(key.clone(), (v.clone(), Instant::now()));
            }
            _ => {
                self.map.remove(key);
            }
        }
        Ok(loaded)
    }

    pub fn invalidate(&self, key: &K) {
        self.map.remove(key);
    }

    pub fn clear(&self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn load(v: Option<u32>) -> Result<Option<u32>, ()> {
        Ok(v)
    }

    #[tokio::test]
    async fn serves_fresh_entries_reloads_stale_ones_and_never_caches_misses() {
        let cache = TtlCache::new(Duration::from_secs(60));
        assert_eq!(cache.get_or_load(&1, load(Some(10))).await, Ok(Some(10)));
        assert_eq!(
            cache.get_or_load(&1, load(Some(11))).await,
            Ok(Some(10)),
            "fresh: cached"
        );
        cache.invalidate(&1);
        assert_eq!(cache.get_or_load(&1, load(None)).await, Ok(None));
        assert_eq!(
            cache.get_or_load(&1, load(Some(12))).await,
            Ok(Some(12)),
            "a miss is not cached"
        );

        let off = TtlCache::new(Duration::ZERO);
        off.get_or_load(&1, load(Some(1))).await.ok();
        assert_eq!(
            off.get_or_load(&1, load(Some(2))).await,
            Ok(Some(2)),
            "ttl 0 disables caching"
        );
    }
}
