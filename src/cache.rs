//! Read-through caches for rows read on every request (operator keys, agents), so the
//! hot paths (emit API, webhooks, connects) skip a database round trip per request.
//!
//! Hand-rolled over `dashmap` rather than a cache crate: entries are bounded by the rows
//! they mirror (agents, keys), so no eviction policy is needed, only an age limit.
//! A change made elsewhere (an agent disabled, a key revoked by another process) is
//! seen within `ttl`; changes made through this node invalidate at once.
//!
//! Misses are remembered too ([`Misses`]), so a stranger repeating an unknown id (a
//! source, an operator key, a client id) costs no query per request.

use std::hash::Hash;
use std::time::{Duration, Instant};

use dashmap::DashMap;

pub struct TtlCache<K, V> {
    map: DashMap<K, (V, Instant)>,
    misses: Misses<K>,
    ttl: Duration,
}

/// Keys recently found missing, kept `ttl`. Bounded: ids chosen by strangers are
/// unbounded, so past `MAX_MISSES` the stale ones go, then all (a miss costs a query
/// again, nothing worse).
pub struct Misses<K> {
    map: DashMap<K, Instant>,
    ttl: Duration,
}

const MAX_MISSES: usize = 100_000;

impl<K: Eq + Hash + Clone> Misses<K> {
    pub fn new(ttl: Duration) -> Misses<K> {
        Misses {
            map: DashMap::new(),
            ttl,
        }
    }

    /// Whether `key` was found missing less than `ttl` ago.
    pub fn contains(&self, key: &K) -> bool {
        self.map.get(key).is_some_and(|at| at.elapsed() < self.ttl)
    }

    pub fn insert(&self, key: K) {
        if self.ttl.is_zero() {
            return;
        }
        if self.map.len() >= MAX_MISSES {
            self.map.retain(|_, at| at.elapsed() < self.ttl);
            if self.map.len() >= MAX_MISSES {
                self.map.clear();
            }
        }
        self.map.insert(key, Instant::now());
    }

    pub fn remove(&self, key: &K) {
        self.map.remove(key);
    }

    pub fn clear(&self) {
        self.map.clear();
    }
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> TtlCache<K, V> {
        TtlCache {
            map: DashMap::new(),
            misses: Misses::new(ttl),
            ttl,
        }
    }

    /// The cached value (or miss) while fresh; otherwise `load`'s, cached.
    pub async fn get_or_load<E, F>(&self, key: &K, load: F) -> Result<Option<V>, E>
    where
        F: Future<Output = Result<Option<V>, E>>,
    {
        if let Some(cached) = self.peek(key) {
            return Ok(cached);
        }
        let loaded = load.await?;
        self.put(key.clone(), loaded.clone());
        Ok(loaded)
    }

    /// The fresh cached value of `key` (`Some(None)`: a fresh miss), or `None` when it
    /// must be loaded: for callers that load many keys in one query ([`TtlCache::put`]).
    pub fn peek(&self, key: &K) -> Option<Option<V>> {
        if let Some(entry) = self.map.get(key)
            && entry.1.elapsed() < self.ttl
        {
            return Some(Some(entry.0.clone()));
        }
        self.misses.contains(key).then_some(None)
    }

    /// Caches what a load found for `key` (`None`: missing), as `get_or_load` does.
    pub fn put(&self, key: K, value: Option<V>) {
        match value {
            Some(v) if !self.ttl.is_zero() => {
                self.map.insert(key, (v, Instant::now()));
            }
            Some(_) => {}
            None => {
                self.map.remove(&key);
                self.misses.insert(key);
            }
        }
    }

    pub fn invalidate(&self, key: &K) {
        self.map.remove(key);
        self.misses.remove(key);
    }

    pub fn clear(&self) {
        self.map.clear();
        self.misses.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn load(v: Option<u32>) -> Result<Option<u32>, ()> {
        Ok(v)
    }

    #[tokio::test]
    async fn what_put_caches_peek_and_get_or_load_answer() {
        let cache = TtlCache::new(Duration::from_secs(60));
        assert_eq!(cache.peek(&1), None, "never loaded: the caller loads it");
        cache.put(1, Some(10));
        cache.put(2, None);
        assert_eq!(cache.peek(&1), Some(Some(10)));
        assert_eq!(cache.peek(&2), Some(None), "a fresh miss");
        assert_eq!(cache.get_or_load(&2, load(Some(3))).await, Ok(None));
        let off = TtlCache::new(Duration::ZERO);
        off.put(1, Some(1));
        assert_eq!(off.peek(&1), None, "ttl 0 caches nothing");
    }

    #[tokio::test]
    async fn serves_fresh_entries_and_misses_until_invalidated() {
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
            Ok(None),
            "a fresh miss is answered without loading"
        );
        cache.invalidate(&1);
        assert_eq!(
            cache.get_or_load(&1, load(Some(12))).await,
            Ok(Some(12)),
            "invalidated: loaded again"
        );

        let off = TtlCache::new(Duration::ZERO);
        off.get_or_load(&1, load(Some(1))).await.ok();
        assert_eq!(
            off.get_or_load(&1, load(Some(2))).await,
            Ok(Some(2)),
            "ttl 0 disables caching"
        );
        off.get_or_load(&2, load(None)).await.ok();
        assert_eq!(
            off.get_or_load(&2, load(Some(3))).await,
            Ok(Some(3)),
            "and remembering misses"
        );
    }
}
