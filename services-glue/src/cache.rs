//! Cache lookups for any cache behind a small trait: hits, misses and lookup
//! duration by cache name (the original "cache hit rate" panel:
//! `sum(rate(cache_lookups_total{cache_result="hit"}[5m])) / sum(rate(cache_lookups_total[5m]))`).
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use services_glue::cache::{CacheBackend, InstrumentedCache};
//!
//! struct Rates(Mutex<HashMap<String, f64>>);
//! impl CacheBackend for Rates {
//!     type Key = String;
//!     type Value = f64;
//!     fn get(&self, key: &String) -> Option<f64> { self.0.lock().unwrap().get(key).copied() }
//!     fn insert(&self, key: String, value: f64) { self.0.lock().unwrap().insert(key, value); }
//! }
//!
//! let meter = opentelemetry::global::meter("liquidity-router");
//! let fx = InstrumentedCache::new(Rates(Mutex::new(HashMap::new())), "fx_rates", &meter);
//! assert_eq!(fx.get(&"EURUSD".to_string()), None);          // miss
//! fx.insert("EURUSD".to_string(), 1.08);
//! assert_eq!(fx.get(&"EURUSD".to_string()), Some(1.08));    // hit
//! ```

use std::sync::Arc;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundCounter, Meter};

use crate::instruments::BoundOnFirstRecord;

/// The small trait a cache implements to be measured.
pub trait CacheBackend {
    /// Key type.
    type Key;
    /// Value type.
    type Value;
    /// Looks a key up.
    fn get(&self, key: &Self::Key) -> Option<Self::Value>;
    /// Stores a value.
    fn insert(&self, key: Self::Key, value: Self::Value);
}

/// Records hits, misses and lookup durations for one named cache. Use it
/// directly around any lookup, or through [`InstrumentedCache`].
#[derive(Clone, Debug)]
pub struct CacheMetrics {
    hit: ResultInstruments,
    miss: ResultInstruments,
}

/// One lookup result's series, bound once: a lookup then records without
/// the SDK hashing its attributes. The counter is bound at once (its series
/// exists from the start); the histogram on the first lookup, so a result
/// never seen exports no empty histogram.
#[derive(Clone)]
struct ResultInstruments {
    lookups: BoundCounter<u64>,
    duration: Arc<BoundOnFirstRecord<f64>>,
}

impl std::fmt::Debug for ResultInstruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultInstruments")
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

impl CacheMetrics {
    /// Instruments for the cache called `name` (a constant, not user input).
    pub fn new(meter: &Meter, name: &'static str) -> Self {
        let lookups = meter
            .u64_counter("cache.lookups")
            .with_unit("{lookup}")
            .with_description("Cache lookups by result (hit or miss)")
            .build();
        let duration = meter
            .f64_histogram("cache.lookup.duration")
            .with_unit("s")
            .with_description("Duration of cache lookups")
            .with_boundaries(vec![
                0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1,
            ])
            .build();
        let bind = |result: &'static str| {
            let attrs = [
                KeyValue::new("cache.name", name),
                KeyValue::new("cache.result", result),
            ];
            // Bound now, so both series exist from the start: a hit ratio
            // reads 0 before the first hit instead of nothing.
            ResultInstruments {
                lookups: lookups.bind(&attrs),
                duration: Arc::new(BoundOnFirstRecord::new(duration.clone(), attrs.to_vec())),
            }
        };
        CacheMetrics {
            hit: bind("hit"),
            miss: bind("miss"),
        }
    }

    /// [`lookup`](Self::lookup) for a cache reached over the network
    /// (Redis): awaits `lookup`.
    pub async fn lookup_async<T>(
        &self,
        lookup: impl std::future::Future<Output = Option<T>>,
    ) -> Option<T> {
        let start = Instant::now();
        let value = lookup.await;
        self.record(start, value.is_some());
        value
    }

    /// Times `lookup` and counts a hit when it returns `Some`.
    pub fn lookup<T>(&self, lookup: impl FnOnce() -> Option<T>) -> Option<T> {
        let start = Instant::now();
        let value = lookup();
        self.record(start, value.is_some());
        value
    }

    /// Counts one lookup begun at `start`, a hit or a miss.
    fn record(&self, start: Instant, hit: bool) {
        let result = if hit { &self.hit } else { &self.miss };
        result.lookups.add(1);
        result.duration.record(start.elapsed().as_secs_f64());
    }
}

/// A cache whose `get` is measured.
#[derive(Debug)]
pub struct InstrumentedCache<C> {
    inner: C,
    metrics: CacheMetrics,
}

impl<C: CacheBackend> InstrumentedCache<C> {
    /// Wraps `inner`, reporting as `name`.
    pub fn new(inner: C, name: &'static str, meter: &Meter) -> Self {
        InstrumentedCache {
            inner,
            metrics: CacheMetrics::new(meter, name),
        }
    }
    /// A measured lookup.
    pub fn get(&self, key: &C::Key) -> Option<C::Value> {
        self.metrics.lookup(|| self.inner.get(key))
    }
    /// Stores a value (not measured).
    pub fn insert(&self, key: C::Key, value: C::Value) {
        self.inner.insert(key, value)
    }
    /// The wrapped cache.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}
