//! A small time-bounded map behind the glue's `CacheBackend` trait, used for
//! the sanctions list and FX rates (so their hit rate is measured).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use services_glue::cache::CacheBackend;

/// Entries expire `ttl` after insertion.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K, V> TtlCache<K, V> {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> CacheBackend for TtlCache<K, V> {
    type Key = K;
    type Value = V;

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    fn insert(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 10_000 {
                let ttl = self.ttl;
                entries.retain(|_, (_, at)| at.elapsed() < ttl);
            }
            entries.insert(key, (value, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl() {
        let cache = TtlCache::new(Duration::from_millis(30));
        cache.insert("EUR", 1.08);
        assert_eq!(cache.get(&"EUR"), Some(1.08));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&"EUR"), None);
    }
}
