//! A small time-bounded map behind the glue's `CacheBackend` trait, used for
//! the sanctions list and FX rates (so their hit rate is measured).

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;
use services_glue::cache::CacheBackend;

/// Entries expire `ttl` after insertion; at most `capacity` are held, the
/// least recently used going first, so memory never follows the input.
#[derive(Debug)]
pub struct TtlCache<K: Hash + Eq, V> {
    ttl: Duration,
    entries: Mutex<LruCache<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V> TtlCache<K, V> {
    /// An empty cache whose entries live `ttl`, holding at most `capacity`.
    pub fn new(ttl: Duration, capacity: NonZeroUsize) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash, V: Clone> CacheBackend for TtlCache<K, V> {
    type Key = K;
    type Value = V;

    fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.entries.lock().ok()?;
        let fresh = entries
            .get(key)
            .is_some_and(|(_, at)| at.elapsed() < self.ttl);
        if !fresh {
            entries.pop(key);
            return None;
        }
        entries.get(key).map(|(v, _)| v.clone())
    }

    fn insert(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.put(key, (value, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_most_its_capacity() {
        let cache = TtlCache::new(Duration::from_secs(60), NonZeroUsize::new(100).unwrap());
        for i in 0..10_000 {
            cache.insert(format!("party-{i}"), i);
        }
        assert_eq!(cache.len(), 100);
        assert_eq!(cache.get(&"party-9999".to_string()), Some(9999));
        assert_eq!(
            cache.get(&"party-0".to_string()),
            None,
            "the oldest went first"
        );
    }

    #[test]
    fn entries_expire_after_their_ttl() {
        let cache = TtlCache::new(Duration::from_millis(30), NonZeroUsize::new(8).unwrap());
        cache.insert("EUR", 1.08);
        assert_eq!(cache.get(&"EUR"), Some(1.08));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&"EUR"), None);
    }
}
