//! Spans created under a dropped span keep no data (see `EarlySampler`), yet
//! the layer is still called when each is entered, exited and closed.
//! Looking such a span up in the registry only to find nothing was most of
//! what it cost, so each thread remembers the ones it created recently and
//! those calls return at once.
//!
//! The memory is a hint checked before the lookup, never instead of one:
//! a span it does not hold (created on another thread, or pushed out by a
//! later one) is looked up as before. It is exact because of how
//! `tracing-subscriber`'s `Registry` hands out ids: an id is made of the
//! creating thread's shard, a slot and the slot's generation, so it names
//! one span until its slot has been reused about 2^30 times, and a span
//! with a remembered id can only be created again on the thread that
//! remembers it, where [`StatelessSpans::forget`] runs for every new span
//! with data. The memory is only used under a `Registry` (checked when the
//! layer is added to its subscriber), and a span without data that gets
//! data later (`set_parent`) makes every thread's memory stale.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_core::span::Id;

/// How many spans without data a thread remembers: a request's worth of
/// nested spans, with room to spare.
const SLOTS: usize = 64;

/// Bumped whenever a span without data gets data: any thread may remember
/// it, so every memory filled before then is stale.
static GAINED_DATA: AtomicU64 = AtomicU64::new(0);

/// Hands each layer its own key, so that two layers (over two registries,
/// whose ids may coincide) never read each other's memory.
static NEXT_LAYER: AtomicU64 = AtomicU64::new(1);

/// This thread's memory: ids of spans without data, by their low bits.
struct Memory {
    /// The layer the ids are of (0: none yet).
    layer: Cell<u64>,
    /// [`GAINED_DATA`] when the memory was started.
    epoch: Cell<u64>,
    /// 0 where nothing is remembered (span ids are never 0).
    ids: [Cell<u64>; SLOTS],
}

thread_local! {
    static MEMORY: Memory = const {
        Memory {
            layer: Cell::new(0),
            epoch: Cell::new(0),
            ids: [const { Cell::new(0) }; SLOTS],
        }
    };
}

/// One layer's view of the per-thread memory of its spans without data.
#[derive(Debug)]
pub(crate) struct StatelessSpans {
    /// This layer's key, unique in the process.
    layer: u64,
    /// Whether the memory is used (only under a `Registry`).
    on: bool,
}

impl StatelessSpans {
    /// Off until [`StatelessSpans::enable`].
    pub(crate) fn off() -> Self {
        StatelessSpans {
            layer: NEXT_LAYER.fetch_add(1, Ordering::Relaxed),
            on: false,
        }
    }

    /// Turns the memory on.
    pub(crate) fn enable(&mut self) {
        self.on = true;
    }

    /// This layer's key, unique in the process: what this layer keeps in
    /// thread-local state is marked with it.
    pub(crate) fn layer_key(&self) -> u64 {
        self.layer
    }

    /// Runs `f` on this thread's memory when it holds this layer's ids and
    /// is not stale; otherwise `None`.
    fn with_current<R>(&self, f: impl FnOnce(&Memory) -> R) -> Option<R> {
        if !self.on {
            return None;
        }
        MEMORY
            .try_with(|memory| {
                (memory.layer.get() == self.layer
                    && memory.epoch.get() == GAINED_DATA.load(Ordering::Relaxed))
                .then(|| f(memory))
            })
            .ok()
            .flatten()
    }

    /// Remembers that `id`, created on this thread, has no data.
    pub(crate) fn remember(&self, id: &Id) {
        if !self.on {
            return;
        }
        let _ = MEMORY.try_with(|memory| {
            let epoch = GAINED_DATA.load(Ordering::Relaxed);
            if memory.layer.get() != self.layer || memory.epoch.get() != epoch {
                // Another layer's ids, or stale ones: start again.
                for slot in &memory.ids {
                    slot.set(0);
                }
                memory.layer.set(self.layer);
                memory.epoch.set(epoch);
            }
            memory.ids[slot(id)].set(id.into_u64());
        });
    }

    /// Whether `id` is remembered as a span without data. `false` means
    /// "not known": the span must be looked up.
    pub(crate) fn contains(&self, id: &Id) -> bool {
        self.with_current(|memory| memory.ids[slot(id)].get() == id.into_u64())
            .unwrap_or(false)
    }

    /// Forgets `id`: it is closing, or it is a new span with data (its id
    /// cannot then be a remembered one, short of generations wrapping).
    /// Returns whether it was remembered.
    pub(crate) fn forget(&self, id: &Id) -> bool {
        self.with_current(|memory| {
            let slot = &memory.ids[slot(id)];
            let held = slot.get() == id.into_u64();
            if held {
                slot.set(0);
            }
            held
        })
        .unwrap_or(false)
    }

    /// A span without data got data: every thread's memory is stale.
    pub(crate) fn span_gained_data() {
        GAINED_DATA.fetch_add(1, Ordering::Relaxed);
    }
}

fn slot(id: &Id) -> usize {
    // The low bits of a registry id are the slot within its page, so
    // spans alive together mostly differ there.
    (id.into_u64() as usize) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Id {
        Id::from_u64(n)
    }

    /// The epoch now. Other tests of this binary give spans data on their
    /// own threads, which makes every memory stale (as it must): a test
    /// that expects an id to be remembered accepts its loss only then.
    fn epoch() -> u64 {
        GAINED_DATA.load(Ordering::SeqCst)
    }

    fn stale_since(epoch: u64) -> bool {
        GAINED_DATA.load(Ordering::SeqCst) != epoch
    }

    #[test]
    fn remembers_forgets_and_is_off_until_enabled() {
        let mut spans = StatelessSpans::off();
        spans.remember(&id(7));
        assert!(!spans.contains(&id(7)), "off: nothing is remembered");
        spans.enable();
        let start = epoch();
        spans.remember(&id(7));
        assert!(spans.contains(&id(7)) || stale_since(start));
        assert!(
            !spans.contains(&id(7 + SLOTS as u64)),
            "same slot, other id"
        );
        assert!(spans.forget(&id(7)) || stale_since(start));
        assert!(!spans.contains(&id(7)));
        assert!(!spans.forget(&id(7)));
    }

    #[test]
    fn a_later_id_in_the_same_slot_pushes_the_earlier_out() {
        let mut spans = StatelessSpans::off();
        spans.enable();
        let start = epoch();
        spans.remember(&id(3));
        spans.remember(&id(3 + SLOTS as u64));
        assert!(!spans.contains(&id(3)));
        assert!(spans.contains(&id(3 + SLOTS as u64)) || stale_since(start));
    }

    #[test]
    fn layers_do_not_read_each_others_ids() {
        let mut a = StatelessSpans::off();
        a.enable();
        let mut b = StatelessSpans::off();
        b.enable();
        a.remember(&id(9));
        assert!(!b.contains(&id(9)));
        b.remember(&id(10));
        assert!(!a.contains(&id(9)), "b took the memory over");
    }

    #[test]
    fn a_span_gaining_data_anywhere_makes_the_memory_stale() {
        let mut spans = StatelessSpans::off();
        spans.enable();
        spans.remember(&id(11));
        std::thread::spawn(StatelessSpans::span_gained_data)
            .join()
            .unwrap();
        assert!(!spans.contains(&id(11)));
        let start = epoch();
        spans.remember(&id(12));
        assert!(spans.contains(&id(12)) || stale_since(start));
    }

    #[test]
    fn other_threads_do_not_see_this_ones_memory() {
        let mut spans = StatelessSpans::off();
        spans.enable();
        let start = epoch();
        spans.remember(&id(13));
        let spans = std::sync::Arc::new(spans);
        let other = spans.clone();
        assert!(!std::thread::spawn(move || other.contains(&id(13)))
            .join()
            .unwrap());
        assert!(spans.contains(&id(13)) || stale_since(start));
    }
}
