//! Business instruments declared once per engine, with typed handles.
//!
//! Each instrument's name, unit, description, allowed attribute keys and
//! (for histograms) buckets are written in one place; the handle's attribute
//! arity is checked at compile time, so a call site cannot invent a new
//! attribute key. Each instrument keeps a bound handle per attribute-value
//! set it has seen (up to 256; past that, the SDK's plain path), so a
//! measurement costs a hash of the values, a read lock and one atomic add;
//! a hot path that knows its values up front can `bind` them itself and
//! skip the hash.
//!
//! ```
//! services_glue::instruments! {
//!     /// The token engine's business metrics.
//!     pub struct TokenInstruments {
//!         /// Tokens minted.
//!         minted: counter("tokens.minted", "{token}", "Tokens minted", ["token.kind"]),
//!         /// Tokens in circulation.
//!         active: up_down_counter("tokens.active", "{token}", "Tokens in circulation", ["token.kind"]),
//!         /// Value of each mint.
//!         value: histogram("tokens.value", "USD", "Value of minted tokens", ["token.kind"],
//!                          [100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0]),
//!     }
//! }
//!
//! let meter = opentelemetry::global::meter("token-engine");
//! let m = TokenInstruments::new(&meter);
//! m.minted.add(1, ["usd"]);
//! m.active.add(1, ["usd"]);
//! m.value.record(2_500.0, ["usd"]);
//! let usd_minted = m.minted.bind(["usd"]); // hot path: attributes resolved once
//! usd_minted.add(1);
//! assert_eq!(TokenInstruments::NAMES, ["tokens.minted", "tokens.active", "tokens.value"]);
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{
    BoundCounter, BoundGauge, BoundHistogram, BoundUpDownCounter, Counter, Gauge, Histogram, Meter,
    UpDownCounter,
};

fn attrs<const N: usize>(keys: &'static [&'static str; N], values: [&str; N]) -> [KeyValue; N] {
    std::array::from_fn(|i| KeyValue::new(keys[i], values[i].to_string()))
}

/// Attribute-value sets each instrument keeps a bound handle for; past it,
/// measurements take the SDK's plain path (and its cardinality limit).
const MAX_BOUND_SETS: usize = 256;

/// Bound handles per attribute-value set, made on first use: a measurement
/// is then a hash of the values, a read lock and the handle's atomic add,
/// instead of a string per value and the SDK's attribute lookup.
#[derive(Debug)]
struct BoundSets<B, const N: usize> {
    hasher: RandomState,
    /// By the values' hash; each entry holds the values it was made for.
    sets: RwLock<HashMap<u64, Vec<BoundSet<B, N>>>>,
    /// [`MAX_BOUND_SETS`] handles are held: a set not among them goes
    /// straight to the plain path, without the write lock.
    full: AtomicBool,
}

/// One attribute-value set and its bound handle.
type BoundSet<B, const N: usize> = ([Box<str>; N], B);

impl<B, const N: usize> Default for BoundSets<B, N> {
    fn default() -> Self {
        BoundSets {
            hasher: RandomState::new(),
            sets: RwLock::new(HashMap::new()),
            full: AtomicBool::new(false),
        }
    }
}

impl<B, const N: usize> BoundSets<B, N> {
    /// Runs `measure` on the handle for `values`, binding it first if
    /// needed; `false` when there is no handle (the bound is reached).
    fn measure(&self, values: [&str; N], bind: impl FnOnce() -> B, measure: impl Fn(&B)) -> bool {
        let hash = self.hasher.hash_one(values);
        if let Ok(sets) = self.sets.read()
            && let Some(bound) = Self::held_for(&sets, hash, &values)
        {
            measure(bound);
            return true;
        }
        if self.full.load(Ordering::Relaxed) {
            return false;
        }
        let Ok(mut sets) = self.sets.write() else {
            return false;
        };
        if let Some(bound) = Self::held_for(&sets, hash, &values) {
            // Bound by another thread meanwhile.
            measure(bound);
            return true;
        }
        if sets.values().map(Vec::len).sum::<usize>() >= MAX_BOUND_SETS {
            self.full.store(true, Ordering::Relaxed);
            return false;
        }
        let bound = bind();
        measure(&bound);
        sets.entry(hash)
            .or_default()
            .push((values.map(Box::from), bound));
        true
    }

    /// [`measure`](Self::measure), or `plain` when there is no handle: what
    /// every declared instrument does with a measurement.
    fn measure_or(
        &self,
        values: [&str; N],
        bind: impl FnOnce() -> B,
        measure: impl Fn(&B),
        plain: impl FnOnce(),
    ) {
        if !self.measure(values, bind, measure) {
            plain();
        }
    }

    /// The handle held for `values` (whose hash is `hash`).
    fn held_for<'a>(
        sets: &'a HashMap<u64, Vec<BoundSet<B, N>>>,
        hash: u64,
        values: &[&str; N],
    ) -> Option<&'a B> {
        sets.get(&hash)?
            .iter()
            .find(|(kept, _)| kept.iter().zip(values).all(|(k, v)| **k == **v))
            .map(|(_, bound)| bound)
    }

    /// How many value sets hold a handle, and how many hashes are kept.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let sets = self.sets.read().unwrap_or_else(|e| e.into_inner());
        (sets.values().map(Vec::len).sum(), sets.len())
    }
}

/// A histogram for one fixed attribute set, bound on its first record: the
/// record skips the SDK's attribute lookup, and a set never recorded exports
/// no empty histogram (binding up front would).
#[cfg_attr(
    not(any(feature = "axum", feature = "actix", feature = "cache")),
    allow(dead_code)
)]
pub(crate) struct BoundOnFirstRecord<T> {
    histogram: Histogram<T>,
    attrs: Vec<KeyValue>,
    bound: OnceLock<BoundHistogram<T>>,
}

#[cfg_attr(
    not(any(feature = "axum", feature = "actix", feature = "cache")),
    allow(dead_code)
)]
impl<T> BoundOnFirstRecord<T> {
    pub(crate) fn new(histogram: Histogram<T>, attrs: Vec<KeyValue>) -> Self {
        BoundOnFirstRecord {
            histogram,
            attrs,
            bound: OnceLock::new(),
        }
    }

    pub(crate) fn record(&self, value: T) {
        self.bound
            .get_or_init(|| self.histogram.bind(&self.attrs))
            .record(value);
    }
}

impl<T> std::fmt::Debug for BoundOnFirstRecord<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundOnFirstRecord")
            .field("attrs", &self.attrs)
            .field("bound", &self.bound.get().is_some())
            .finish()
    }
}

/// Declares an instrument type holding its keys, with the constructor all
/// but the histogram share (the histogram also takes buckets); written once
/// so the three cannot drift apart.
macro_rules! declared_instrument {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $bound:ty, $build:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name<const N: usize> {
            inner: $inner,
            keys: &'static [&'static str; N],
            bound: $bound,
        }

        impl<const N: usize> $name<N> {
            /// Creates the instrument.
            pub fn new(
                meter: &Meter,
                name: &'static str,
                unit: &'static str,
                description: &'static str,
                keys: &'static [&'static str; N],
            ) -> Self {
                let inner = meter
                    .$build(name)
                    .with_unit(unit)
                    .with_description(description)
                    .build();
                $name {
                    inner,
                    keys,
                    bound: Default::default(),
                }
            }
        }
    };
}

declared_instrument!(
    /// A monotonic `u64` counter with exactly `N` declared attribute keys.
    DeclaredCounter,
    Counter<u64>,
    Arc<BoundSets<BoundCounter<u64>, N>>,
    u64_counter
);

impl<const N: usize> DeclaredCounter<N> {
    /// Adds `value` for these attribute values (in declaration order).
    pub fn add(&self, value: u64, values: [&str; N]) {
        self.bound.measure_or(
            values,
            || self.bind(values),
            |b| b.add(value),
            || self.inner.add(value, &attrs(self.keys, values)),
        );
    }
    /// Resolves the attributes once; the bound handle's `add` is the hot path.
    pub fn bind(&self, values: [&str; N]) -> BoundCounter<u64> {
        self.inner.bind(&attrs(self.keys, values))
    }
}

declared_instrument!(
    /// An `i64` up-down counter (things that come and go) with `N` attribute keys.
    DeclaredUpDownCounter,
    UpDownCounter<i64>,
    Arc<BoundSets<BoundUpDownCounter<i64>, N>>,
    i64_up_down_counter
);

impl<const N: usize> DeclaredUpDownCounter<N> {
    /// Adds `delta` (negative to decrease).
    pub fn add(&self, delta: i64, values: [&str; N]) {
        self.bound.measure_or(
            values,
            || self.bind(values),
            |b| b.add(delta),
            || self.inner.add(delta, &attrs(self.keys, values)),
        );
    }
    /// Resolves the attributes once.
    pub fn bind(&self, values: [&str; N]) -> BoundUpDownCounter<i64> {
        self.inner.bind(&attrs(self.keys, values))
    }
}

declared_instrument!(
    /// An `f64` gauge (last value wins) with `N` attribute keys.
    DeclaredGauge,
    Gauge<f64>,
    Arc<BoundSets<BoundGauge<f64>, N>>,
    f64_gauge
);

impl<const N: usize> DeclaredGauge<N> {
    /// Sets the current value.
    pub fn record(&self, value: f64, values: [&str; N]) {
        self.bound.measure_or(
            values,
            || self.bind(values),
            |b| b.record(value),
            || self.inner.record(value, &attrs(self.keys, values)),
        );
    }
    /// Resolves the attributes once.
    pub fn bind(&self, values: [&str; N]) -> BoundGauge<f64> {
        self.inner.bind(&attrs(self.keys, values))
    }
}

/// An `f64` histogram with declared buckets and `N` attribute keys.
#[derive(Clone, Debug)]
pub struct DeclaredHistogram<const N: usize> {
    inner: Histogram<f64>,
    keys: &'static [&'static str; N],
    bound: Arc<BoundSets<BoundHistogram<f64>, N>>,
}

impl<const N: usize> DeclaredHistogram<N> {
    /// Creates the instrument with explicit bucket boundaries (empty: the SDK's,
    /// or telemetry's seconds buckets when the unit is `s`).
    pub fn new(
        meter: &Meter,
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        keys: &'static [&'static str; N],
        buckets: &'static [f64],
    ) -> Self {
        let mut b = meter
            .f64_histogram(name)
            .with_unit(unit)
            .with_description(description);
        if !buckets.is_empty() {
            b = b.with_boundaries(buckets.to_vec());
        }
        DeclaredHistogram {
            inner: b.build(),
            keys,
            bound: Default::default(),
        }
    }
    /// Records one observation.
    pub fn record(&self, value: f64, values: [&str; N]) {
        self.bound.measure_or(
            values,
            || self.bind(values),
            |b| b.record(value),
            || self.inner.record(value, &attrs(self.keys, values)),
        );
    }
    /// Resolves the attributes once.
    pub fn bind(&self, values: [&str; N]) -> BoundHistogram<f64> {
        self.inner.bind(&attrs(self.keys, values))
    }
}

/// Counts a macro repetition, for the attribute arity.
#[doc(hidden)]
#[macro_export]
macro_rules! __glue_count {
    () => { 0usize };
    ($head:tt $($tail:tt)*) => { 1usize + $crate::__glue_count!($($tail)*) };
}

/// Declares an engine's business instruments in one place; see the
/// [module docs](crate::instruments). Kinds: `counter`, `up_down_counter`,
/// `gauge`, and `histogram` (with a trailing bucket list).
#[macro_export]
macro_rules! instruments {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $kind:ident ( $iname:literal, $unit:literal, $desc:literal, [$($key:literal),* $(,)?] $(, [$($bucket:expr),* $(,)?])? )
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        $vis struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $crate::instruments!(@type $kind, $crate::__glue_count!($($key)*)),
            )*
        }

        impl $name {
            /// The declared instrument names, in declaration order (for
            /// tests and dashboards that check every one is exported).
            pub const NAMES: &'static [&'static str] = &[$($iname),*];

            /// Creates every instrument on `meter`.
            pub fn new(meter: &$crate::__private::Meter) -> Self {
                $name {
                    $(
                        $field: $crate::instruments!(@new $kind, meter, $iname, $unit, $desc, [$($key),*] $(, [$($bucket),*])?),
                    )*
                }
            }
        }
    };
    (@type counter, $n:expr) => { $crate::instruments::DeclaredCounter<{ $n }> };
    (@type up_down_counter, $n:expr) => { $crate::instruments::DeclaredUpDownCounter<{ $n }> };
    (@type gauge, $n:expr) => { $crate::instruments::DeclaredGauge<{ $n }> };
    (@type histogram, $n:expr) => { $crate::instruments::DeclaredHistogram<{ $n }> };
    (@new counter, $m:ident, $i:literal, $u:literal, $d:literal, [$($k:literal),*]) => {
        $crate::instruments::DeclaredCounter::new($m, $i, $u, $d, &[$($k),*])
    };
    (@new up_down_counter, $m:ident, $i:literal, $u:literal, $d:literal, [$($k:literal),*]) => {
        $crate::instruments::DeclaredUpDownCounter::new($m, $i, $u, $d, &[$($k),*])
    };
    (@new gauge, $m:ident, $i:literal, $u:literal, $d:literal, [$($k:literal),*]) => {
        $crate::instruments::DeclaredGauge::new($m, $i, $u, $d, &[$($k),*])
    };
    (@new histogram, $m:ident, $i:literal, $u:literal, $d:literal, [$($k:literal),*] $(, [$($b:expr),*])?) => {
        $crate::instruments::DeclaredHistogram::new($m, $i, $u, $d, &[$($k),*], &[$($($b),*)?])
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_cardinality_stays_bounded_and_is_measured_on_the_plain_path() {
        let sets = BoundSets::<u32, 1>::default();
        let bound = std::sync::atomic::AtomicUsize::new(0);
        let measured = std::sync::atomic::AtomicUsize::new(0);
        for i in 0..10_000 {
            let value = format!("id-{i}");
            let kept = sets.measure(
                [&value],
                || bound.fetch_add(1, Ordering::Relaxed) as u32,
                |_| {
                    measured.fetch_add(1, Ordering::Relaxed);
                },
            );
            assert_eq!(kept, i < MAX_BOUND_SETS, "set {i}");
        }
        assert_eq!(bound.load(Ordering::Relaxed), MAX_BOUND_SETS);
        assert_eq!(measured.load(Ordering::Relaxed), MAX_BOUND_SETS);
        // No entry, not even an empty one, for the sets past the bound.
        assert_eq!(sets.held(), (MAX_BOUND_SETS, MAX_BOUND_SETS));
        // The sets that hold a handle keep using it.
        assert!(sets.measure(["id-7"], || unreachable!(), |b| assert_eq!(*b, 7)));
    }
}
