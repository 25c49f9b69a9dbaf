//! Self-observability: what each signal's pipeline did, and whether exports
//! are succeeding.
//!
//! Upstream processors drop silently when their queue is full. Ours count
//! every item exactly once, so that for each signal
//! `emitted == exported + failed + dropped + queued` at any quiet moment.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::dispatcher::WeakDispatch;

use crate::config::Signal;

/// Live counters of one signal's pipeline. Shared by the processor (hot path:
/// one relaxed atomic add per item), the worker and the metric observers.
#[derive(Debug)]
pub(crate) struct PipelineStats {
    pub(crate) signal: Signal,
    pub(crate) emitted: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) exported: AtomicU64,
    /// Items lost: in failed exports, and rejected in partial successes.
    pub(crate) failed: AtomicU64,
    /// Of `failed`, the items collectors rejected in partial successes.
    pub(crate) rejected: AtomicU64,
    pub(crate) export_calls: AtomicU64,
    pub(crate) failed_calls: AtomicU64,
    pub(crate) consecutive_failures: AtomicU64,
    pub(crate) queued: AtomicUsize,
    pub(crate) capacity: usize,
    last_error: Mutex<Option<String>>,
    warn_state: Mutex<WarnState>,
    /// Telemetry's own subscriber, where export warnings go (weak: the
    /// subscriber owns the pipelines).
    log_to: OnceLock<WeakDispatch>,
}

#[derive(Debug, Default)]
struct WarnState {
    last_warned: Option<Instant>,
    suppressed: u64,
}

/// How often a still-failing exporter repeats its warning.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Set in [`PipelineStats::queued`] when the queue closes. The bound and
/// the closing share one atomic, so a push either reserves its slot before
/// the queue closed (and the worker's last drain waits for its item) or is
/// refused: none lands in the channel after the last drain, uncounted.
pub(crate) const QUEUE_CLOSED: usize = 1 << (usize::BITS - 1);

impl PipelineStats {
    /// Items held: reserved by a push and not yet exported, failed or given
    /// back.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed) & !QUEUE_CLOSED
    }

    pub(crate) fn new(signal: Signal, capacity: usize) -> Arc<PipelineStats> {
        Arc::new(PipelineStats {
            signal,
            emitted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            export_calls: AtomicU64::new(0),
            failed_calls: AtomicU64::new(0),
            consecutive_failures: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            capacity,
            last_error: Mutex::new(None),
            warn_state: Mutex::new(WarnState::default()),
            log_to: OnceLock::new(),
        })
    }

    /// Sends this pipeline's warnings to `dispatch`: the exporter threads
    /// that report them have no default subscriber of their own when
    /// telemetry was built without being installed globally.
    pub(crate) fn log_to(&self, dispatch: &tracing::Dispatch) {
        let _ = self.log_to.set(dispatch.downgrade());
    }

    /// Runs `f` (a `tracing` macro) with telemetry's subscriber as default,
    /// or with the global one once telemetry is gone.
    fn log(&self, f: impl FnOnce()) {
        match self.log_to.get().and_then(WeakDispatch::upgrade) {
            Some(dispatch) => tracing::dispatcher::with_default(&dispatch, f),
            None => f(),
        }
    }

    /// Records a successful export of `n` items; says once that the
    /// collector is back if it had been failing.
    pub(crate) fn export_succeeded(&self, n: u64, endpoint: &str) {
        self.export_calls.fetch_add(1, Ordering::Relaxed);
        self.exported.fetch_add(n, Ordering::Relaxed);
        let failures = self.consecutive_failures.swap(0, Ordering::Relaxed);
        if failures > 0 {
            if let Ok(mut w) = self.warn_state.lock() {
                *w = WarnState::default();
            }
            self.log(|| {
                tracing::info!(
                    target: "telemetry::export",
                    signal = %self.signal,
                    endpoint,
                    failed_attempts = failures,
                    "telemetry export recovered: the collector is reachable again"
                )
            });
        }
    }

    /// Records an export of `sent` items the collector accepted, of which
    /// it rejected `rejected` (an OTLP partial success; never more than were
    /// sent): those are lost, though the collector is reachable.
    pub(crate) fn export_answered(&self, sent: u64, rejected: u64, endpoint: &str) {
        let rejected = rejected.min(sent);
        self.export_succeeded(sent - rejected, endpoint);
        if rejected > 0 {
            self.failed.fetch_add(rejected, Ordering::Relaxed);
            self.rejected.fetch_add(rejected, Ordering::Relaxed);
        }
    }

    /// Records a failed export attempt; `lost` items are given up (0 while
    /// the batch is kept for a retry). Warns on the first failure and then at
    /// most once a minute, so a dead collector never floods the logs.
    pub(crate) fn export_failed(&self, lost: u64, endpoint: &str, error: &str) {
        self.export_calls.fetch_add(1, Ordering::Relaxed);
        self.failed_calls.fetch_add(1, Ordering::Relaxed);
        self.failed.fetch_add(lost, Ordering::Relaxed);
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(error.to_string());
        }
        let Ok(mut w) = self.warn_state.lock() else {
            return;
        };
        let due = w.last_warned.is_none_or(|t| t.elapsed() >= WARN_EVERY);
        if due {
            let suppressed = std::mem::take(&mut w.suppressed);
            w.last_warned = Some(Instant::now());
            drop(w);
            self.log(|| {
                tracing::warn!(
                    target: "telemetry::export",
                    signal = %self.signal,
                    endpoint,
                    error,
                    lost_items = self.failed.load(Ordering::Relaxed),
                    similar_warnings_suppressed = suppressed,
                    "telemetry export failing: the collector is unreachable or rejecting data; \
                     the service keeps running; data is held and retried up to the queue's limit, \
                     and dropped beyond it"
                )
            });
        } else {
            w.suppressed += 1;
        }
    }

    pub(crate) fn snapshot(&self) -> SignalStatus {
        let consecutive_failures = self.consecutive_failures.load(Ordering::Relaxed);
        let export_calls = self.export_calls.load(Ordering::Relaxed);
        let state = if consecutive_failures > 0 {
            ExportState::Failing {
                consecutive_failures,
                last_error: self
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|e| e.clone())
                    .unwrap_or_default(),
            }
        } else if export_calls == 0 {
            ExportState::NotYetExported
        } else {
            ExportState::Ok
        };
        SignalStatus {
            signal: self.signal,
            state,
            emitted: self.emitted.load(Ordering::Relaxed),
            exported: self.exported.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            queued: self.queued(),
            queue_capacity: self.capacity,
        }
    }
}

/// Whether a signal's last export went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportState {
    /// Nothing exported yet (nothing to send, or the first batch is pending).
    NotYetExported,
    /// The last export succeeded.
    Ok,
    /// The last `consecutive_failures` exports failed.
    Failing {
        /// Failures since the last success.
        consecutive_failures: u64,
        /// The most recent error.
        last_error: String,
    },
}

/// A snapshot of one signal's pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalStatus {
    /// Which signal.
    pub signal: Signal,
    /// Export health.
    pub state: ExportState,
    /// Items handed to the pipeline (spans ended, log records emitted,
    /// metric data points collected).
    pub emitted: u64,
    /// Items the collector accepted.
    pub exported: u64,
    /// Items lost in failed exports, and items a collector rejected in an
    /// export it answered with a partial success.
    pub failed: u64,
    /// Items dropped because the queue was full or the pipeline shut down.
    pub dropped: u64,
    /// Items held right now: waiting in the queue or in the export in
    /// flight. Never more than `queue_capacity`.
    pub queued: usize,
    /// Most items the pipeline holds at once (`OTEL_BSP_MAX_QUEUE_SIZE`,
    /// `OTEL_BLRP_MAX_QUEUE_SIZE`); beyond it items are dropped. 0 for
    /// metrics, which have no queue.
    pub queue_capacity: usize,
}

/// A cloneable handle for readiness endpoints: is telemetry getting out?
///
/// ```
/// let telemetry = telemetry::Telemetry::builder("doc-engine")
///     .with_env([("OTEL_SDK_DISABLED", "true")])
///     .build()
///     .unwrap();
/// let health = telemetry.health();
/// assert!(health.is_healthy());
/// assert!(health.signals().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct TelemetryHealth {
    pub(crate) pipelines: Vec<Arc<PipelineStats>>,
}

impl TelemetryHealth {
    /// True unless some signal's most recent export failed.
    pub fn is_healthy(&self) -> bool {
        self.pipelines
            .iter()
            .all(|p| p.consecutive_failures.load(Ordering::Relaxed) == 0)
    }

    /// Per-signal counters and state.
    pub fn signals(&self) -> Vec<SignalStatus> {
        self.pipelines.iter().map(|p| p.snapshot()).collect()
    }

    /// The counters of one signal, summed over its exporters.
    pub fn signal(&self, signal: Signal) -> Option<SignalStatus> {
        self.pipelines
            .iter()
            .filter(|p| p.signal == signal)
            .map(|p| p.snapshot())
            .reduce(|mut a, b| {
                a.emitted += b.emitted;
                a.exported += b.exported;
                a.failed += b.failed;
                a.dropped += b.dropped;
                a.queued += b.queued;
                a.queue_capacity += b.queue_capacity;
                if matches!(b.state, ExportState::Failing { .. }) {
                    a.state = b.state;
                }
                a
            })
    }
}

impl fmt::Debug for TelemetryHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.signals()).finish()
    }
}
