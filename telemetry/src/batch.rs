//! A bounded batch queue with one worker thread per exporter.
//!
//! Why not the SDK's batch processors: they drop silently when full, expose no
//! queue size, and their shutdown can deadlock when the exporter's I/O lives on
//! a `current_thread` runtime that is blocked waiting for them. Here:
//! - the hot path is one `try_send`, one relaxed atomic add and one
//!   compare-and-swap reserving a queue slot (a plain load when full);
//! - the worker is not woken per item: it takes what is queued every
//!   schedule delay, or as soon as a full batch is waiting (one wake per
//!   batch). A wake per item cost each engine of the fleet a futex wake and
//!   two context switches per span and log record, more than the span itself;
//! - every item is counted exactly once (exported, failed or dropped);
//! - at most `max_queue_size` items are held at any time, counting the batch
//!   being exported, and `queued` says exactly how many; beyond a few
//!   megabytes, memory is taken for the items held, not for the bound, so
//!   a queue sized for a long outage costs little while the collector keeps
//!   up;
//! - exports run on telemetry's own tokio runtime, never the application's,
//!   each bounded by its export timeout;
//! - a batch whose export fails for a transient reason (collector
//!   unavailable, refused, timed out, throttled) is kept and retried with
//!   backoff while newer items wait in the queue, so an outage shorter than
//!   the queue holds loses nothing; only overflow is dropped, and counted;
//! - flush and shutdown reply over a channel, so callers wait with a deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select, unbounded};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

use crate::config::BatchConfig;
use crate::health::{PipelineStats, QUEUE_CLOSED};

/// A boxed export future borrowing the exporter.
pub(crate) type ExportFuture<'a> = Pin<Box<dyn Future<Output = OTelSdkResult> + Send + 'a>>;

/// What the worker drives: one exporter of items `T`.
///
/// The exporter holds the batch being exported, in whatever form its
/// attempts send: the items themselves, or bytes encoded from them once, so
/// a retry repeats the same request without copying a span.
pub(crate) trait BatchExporter<T>: Send + 'static {
    /// Takes the next batch out of `batch` (leaving it empty, its capacity
    /// kept for the next) and readies it once: masking, encoding.
    fn take_batch(&mut self, batch: &mut Vec<T>);
    /// One attempt at exporting the batch last taken.
    fn export(&mut self) -> ExportFuture<'_>;
    /// The batch last taken has been accounted for: let it go.
    fn release_batch(&mut self);
    /// After a failed attempt: how long the collector asked to be left alone
    /// (HTTP `Retry-After`, gRPC `RetryInfo`), if it did. A throttled batch is
    /// retried, no sooner than that.
    fn retry_after(&mut self) -> Option<Duration> {
        None
    }
    /// After a failed attempt that read as `message`: whether another
    /// attempt may succeed. An exporter that knows its failures says so
    /// itself; one handed in is judged by its message ([`is_transient`]).
    fn retryable(&mut self, message: &str) -> bool {
        is_transient(message)
    }
    /// After a successful attempt: how many of the batch's items the
    /// collector rejected (an OTLP partial success). They are not retried.
    fn rejected(&mut self) -> u64 {
        0
    }
    /// Releases the exporter's resources.
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult;
}

/// Exporters chosen at run time (see `exporters`) are boxed.
impl<T: 'static> BatchExporter<T> for Box<dyn BatchExporter<T>> {
    fn take_batch(&mut self, batch: &mut Vec<T>) {
        (**self).take_batch(batch)
    }
    fn export(&mut self) -> ExportFuture<'_> {
        (**self).export()
    }
    fn release_batch(&mut self) {
        (**self).release_batch()
    }
    fn retry_after(&mut self) -> Option<Duration> {
        (**self).retry_after()
    }
    fn retryable(&mut self, message: &str) -> bool {
        (**self).retryable(message)
    }
    fn rejected(&mut self) -> u64 {
        (**self).rejected()
    }
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult {
        (**self).shutdown(timeout)
    }
}

enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// How long a shutdown waits for pushes that reserved a slot before the
/// queue closed to deliver their item.
const RESERVED_WAIT: Duration = Duration::from_millis(100);
/// First wait before retrying a batch; doubles up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
/// Longest wait between two attempts at one batch.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Longest wait a throttling collector is granted: a `Retry-After` of a day
/// would otherwise stop the signal for a day.
const MAX_THROTTLE_DELAY: Duration = Duration::from_secs(300);

/// Whether the failure of an exporter handed in (the OTLP crate's, or any
/// other `SpanExporter`/`LogExporter`) is worth retrying, read from its
/// message, per the OTLP specification's failure classes: gRPC
/// UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
/// DATA_LOSS; HTTP 429, 502, 503, 504 and network errors. Anything else
/// (bad request, unauthenticated, …) would fail again, and so would an
/// OUT_OF_RANGE the OTLP crate's log client still reports after its own
/// retries (see below). Telemetry's own OTLP exporter does not go through
/// this: it knows each failure's status (`otlp_export`).
///
/// A gRPC status made up locally because the connection broke with the
/// request in flight (a collector killed or restarted) is a network error
/// too, whatever its code (`Unknown` for a reset connection; gRPC itself
/// says UNAVAILABLE): where the message names the transport's error right
/// after the code (`…: transport error: …`), it is retried.
pub(crate) fn is_transient(error: &str) -> bool {
    if let Some(rest) = error.split("gRPC code: ").nth(1) {
        let code: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
        if code == "OutOfRange" && error.contains(OTLP_CRATE_CLIENT_FAILED) {
            // The OTLP crate's own clients (in an exporter handed in)
            // report a retryable code only once their own retries are
            // spent. OUT_OF_RANGE that survives them is, in practice, tonic refusing an answer over
            // 4 MiB (a status it makes up): the collector did answer, and
            // would answer the same again.
            return false;
        }
        let from_transport = rest[code.len()..].starts_with(": transport error");
        return from_transport
            || matches!(
                code.as_str(),
                "Unavailable"
                    | "Cancelled"
                    | "DeadlineExceeded"
                    | "Aborted"
                    | "OutOfRange"
                    | "DataLoss"
            );
    }
    if let Some(rest) = error.split("status code: ").nth(1) {
        let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return matches!(code.as_str(), "429" | "502" | "503" | "504");
    }
    error.contains("network error")
}

/// How the OTLP crate's gRPC clients (`TonicLogsClient`, …) word a failure.
const OTLP_CRATE_CLIENT_FAILED: &str = "Client export failed with gRPC code: ";

/// How the worker words its own export timeout.
const TIMEOUT_PREFIX: &str = "export timed out after";

/// The sending half, owned by a span or log processor.
#[derive(Debug)]
pub(crate) struct BatchQueue<T> {
    data: Sender<T>,
    control: Sender<Control>,
    /// One pending "a full batch is waiting" signal at most.
    wake: Sender<()>,
    /// Items that make a batch: the queue length that wakes the worker.
    batch_size: usize,
    stats: Arc<PipelineStats>,
    /// Most items held at once: waiting in the channel or in the batch being
    /// exported (`stats.queued` counts them).
    capacity: usize,
    shut_down: AtomicBool,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Control::Flush(_) => "Flush",
            Control::Shutdown(_) => "Shutdown",
        })
    }
}

/// Bytes of items a queue may allocate up front (each slot adds a stamp of
/// 8–16 bytes). The default bounds take 0.7 MiB (2048 spans of 352 bytes)
/// and 1.1 MiB (2048 log records of 528); up to ≈ 11,900 spans or 7,900 log
/// records stay on the array channel.
const EAGER_SLOT_BYTES: usize = 4 << 20;

/// The channel that carries a queue's items; `reserve_slot` holds either
/// kind to the bound.
///
/// An array channel is the cheapest per push, but it allocates and touches a
/// slot for every item of its bound when it is made: for a bound sized for
/// a long outage that is memory held while the collector keeps up, and an
/// abort at start-up for a bound larger than memory. Above
/// [`EAGER_SLOT_BYTES`] of items the list channel, which allocates in blocks
/// of 31 items as they arrive and frees them as they leave, is taken
/// instead (≈ 340 more instructions per span pushed, its blocks zeroed).
fn data_channel<T>(bound: usize) -> (Sender<T>, Receiver<T>) {
    if bound.saturating_mul(std::mem::size_of::<T>().max(1)) <= EAGER_SLOT_BYTES {
        bounded(bound)
    } else {
        unbounded()
    }
}

/// Items of capacity the worker's batch keeps between exports: as many as
/// [`EAGER_SLOT_BYTES`] hold, so the default batch (512) never shrinks.
fn batch_capacity_kept<T>() -> usize {
    EAGER_SLOT_BYTES / std::mem::size_of::<T>().max(1)
}

impl<T: Send + 'static> BatchQueue<T> {
    /// Starts the worker thread. `endpoint` only labels warnings.
    pub(crate) fn start<E: BatchExporter<T>>(
        name: &str,
        exporter: E,
        config: BatchConfig,
        runtime: tokio::runtime::Handle,
        stats: Arc<PipelineStats>,
        endpoint: String,
    ) -> std::io::Result<BatchQueue<T>> {
        let (data, data_rx) = data_channel(config.max_queue_size);
        let (control, control_rx) = bounded(8);
        let (wake, wake_rx) = bounded(1);
        let worker = Worker {
            exporter,
            config,
            runtime,
            stats: Arc::clone(&stats),
            endpoint,
            data: data_rx,
            control: control_rx,
            wake: wake_rx,
            // Grows with the batches taken, not to the configured size.
            batch: Vec::new(),
            stopping: false,
            flushes: Vec::new(),
            shutdown_reply: None,
        };
        let handle = std::thread::Builder::new()
            .name(format!("otel-{name}"))
            .spawn(move || worker.run())?;
        Ok(BatchQueue {
            data,
            control,
            wake,
            batch_size: config.max_export_batch_size.max(1),
            stats,
            capacity: config.max_queue_size,
            shut_down: AtomicBool::new(false),
            worker: Mutex::new(Some(handle)),
        })
    }

    /// Whether the queue has been shut down (it takes nothing more).
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Relaxed)
    }

    /// Hands an item over without blocking; drops and counts it when full.
    ///
    /// "Full" counts the batch the worker is exporting too: items taken off
    /// the channel keep their slot until their export has been accounted, so
    /// memory is bounded by `max_queue_size`, not by it plus a batch.
    #[inline]
    pub(crate) fn push(&self, item: T) {
        self.stats.emitted.fetch_add(1, Ordering::Relaxed);
        if self.shut_down.load(Ordering::Relaxed) || !self.reserve_slot() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.data.try_send(item) {
            Ok(()) => {
                // A full batch is waiting: wake the worker (once; a pending
                // wake makes this a failed try_send, no system call).
                if self.data.len() >= self.batch_size {
                    let _ = self.wake.try_send(());
                }
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Takes one of the `capacity` slots; false when all are taken.
    #[inline]
    fn reserve_slot(&self) -> bool {
        self.stats
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                (q < self.capacity).then_some(q + 1)
            })
            .is_ok()
    }

    /// Exports everything queued so far, waiting at most `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let (tx, rx) = bounded(1);
        self.control
            .send_timeout(Control::Flush(tx), timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))?;
        rx.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }

    /// Exports what is queued and stops the worker, waiting at most `timeout`.
    /// Items arriving afterwards are counted as dropped. Idempotent.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        // No slot can be reserved from now on: pushes are refused (and
        // counted as dropped) or were already on their way to the channel.
        self.stats.queued.fetch_or(QUEUE_CLOSED, Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let (tx, rx) = bounded(1);
        self.control
            .send_timeout(Control::Shutdown(tx), timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(remaining) {
            Ok(()) => {
                if let Some(handle) = self.worker.lock().ok().and_then(|mut w| w.take()) {
                    // The worker has replied and is returning; joining is immediate.
                    let _ = handle.join();
                }
                Ok(())
            }
            // The worker is still stuck in an export; it finishes (bounded by
            // its export timeout) on its own and we leave it detached.
            Err(_) => Err(OTelSdkError::Timeout(timeout)),
        }
    }
}

struct Worker<T, E> {
    exporter: E,
    config: BatchConfig,
    runtime: tokio::runtime::Handle,
    stats: Arc<PipelineStats>,
    endpoint: String,
    data: Receiver<T>,
    control: Receiver<Control>,
    wake: Receiver<()>,
    batch: Vec<T>,
    /// A shutdown arrived: no more retries, one attempt per batch.
    stopping: bool,
    /// Flushes that arrived while a batch was being retried.
    flushes: Vec<Sender<()>>,
    /// The shutdown that arrived while a batch was being retried.
    shutdown_reply: Option<Sender<()>>,
}

impl<T: Send + 'static, E: BatchExporter<T>> Worker<T, E> {
    fn run(mut self) {
        let mut next_tick = Instant::now() + self.config.schedule_delay;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            select! {
                recv(self.wake) -> woken => match woken {
                    // A full batch is waiting: export full batches only; the
                    // rest waits for the tick, as it would have.
                    Ok(()) => {
                        self.export_full_batches();
                        if self.answer_deferred() {
                            return;
                        }
                    }
                    // The queue's owner is gone: the processor was dropped.
                    Err(_) => {
                        self.drain();
                        let _ = self.exporter.shutdown(self.config.export_timeout);
                        return;
                    }
                },
                recv(self.control) -> msg => match msg {
                    Ok(Control::Flush(reply)) => {
                        self.flushes.push(reply);
                        self.drain();
                        next_tick = Instant::now() + self.config.schedule_delay;
                        if self.answer_deferred() {
                            return;
                        }
                    }
                    Ok(Control::Shutdown(reply)) => {
                        self.stopping = true;
                        self.shutdown_reply = Some(reply);
                        self.drain();
                        self.answer_deferred();
                        return;
                    }
                    Err(_) => {
                        self.drain();
                        return;
                    }
                },
                default(wait) => {
                    self.drain();
                    next_tick = Instant::now() + self.config.schedule_delay;
                    if self.answer_deferred() {
                        return;
                    }
                }
            }
        }
    }

    /// Exports batches while a full one is waiting in the channel.
    fn export_full_batches(&mut self) {
        while self.data.len() >= self.config.max_export_batch_size.max(1) && self.fill_batch() {
            self.export_batch();
        }
    }

    /// Exports everything in the channel, in batches.
    fn drain(&mut self) {
        while self.fill_batch() {
            self.export_batch();
        }
    }

    /// Once the queue is closed: exports what is still arriving from pushes
    /// that reserved a slot before it closed, until every slot is given
    /// back. Such a push is one `try_send` from done; a pusher descheduled
    /// for longer than [`RESERVED_WAIT`] leaves its item counted as queued.
    fn drain_reserved(&mut self) {
        let deadline = Instant::now() + RESERVED_WAIT;
        loop {
            self.drain();
            if self.stats.queued() == 0 || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Moves queued items into the batch up to its size; false when there is
    /// nothing to export.
    fn fill_batch(&mut self) -> bool {
        while self.batch.len() < self.config.max_export_batch_size {
            match self.data.try_recv() {
                Ok(item) => self.batch.push(item),
                Err(_) => break,
            }
        }
        !self.batch.is_empty()
    }

    /// Answers flushes (and a shutdown) that arrived during a retry, once
    /// everything queued before them has been handled; true when the worker
    /// must stop.
    fn answer_deferred(&mut self) -> bool {
        if self.shutdown_reply.is_some() {
            self.drain_reserved();
            let _ = self.exporter.shutdown(self.config.export_timeout);
            if let Some(reply) = self.shutdown_reply.take() {
                let _ = reply.send(());
            }
            return true;
        }
        if !self.flushes.is_empty() {
            self.drain();
            for reply in self.flushes.drain(..) {
                let _ = reply.send(());
            }
        }
        false
    }

    /// Exports the batch; a transient failure keeps it and retries with
    /// backoff (a shutdown ends the retries: one more attempt, then it is
    /// counted as failed).
    fn export_batch(&mut self) {
        let n = self.batch.len() as u64;
        self.exporter.take_batch(&mut self.batch);
        // The large batches of a drained outage give their memory back.
        let keep = batch_capacity_kept::<T>();
        if self.batch.capacity() > keep {
            self.batch.shrink_to(keep);
        }
        let mut delay = FIRST_RETRY_DELAY;
        loop {
            let timeout = self.config.export_timeout;
            let exporter = &mut self.exporter;
            let result = self
                .runtime
                .block_on(async move { tokio::time::timeout(timeout, exporter.export()).await });
            let (error, retryable) = match result {
                Ok(Ok(())) => {
                    let rejected = self.exporter.rejected();
                    self.stats.export_answered(n, rejected, &self.endpoint);
                    break;
                }
                Ok(Err(e)) => {
                    let error = e.to_string();
                    let retryable = self.exporter.retryable(&error);
                    (error, retryable)
                }
                // Our own deadline: the collector may answer in time next.
                Err(_) => (format!("{TIMEOUT_PREFIX} {timeout:?}"), true),
            };
            let throttled_for = self
                .exporter
                .retry_after()
                .map(|d| d.min(MAX_THROTTLE_DELAY));
            if self.stopping || !(throttled_for.is_some() || retryable) {
                self.stats.export_failed(n, &self.endpoint, &error);
                break;
            }
            // Keep the batch (its queue slots stay taken, so newer items
            // overflow rather than memory growing) and try again.
            self.stats.export_failed(0, &self.endpoint, &error);
            self.wait_before_retry(delay, throttled_for.unwrap_or_default());
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
        self.exporter.release_batch();
        self.batch.clear();
        // Accounted as exported or failed: release their queue slots.
        self.stats.queued.fetch_sub(n as usize, Ordering::Relaxed);
    }

    /// Sleeps `delay` (±20%) but at least `at_least`, still hearing flushes
    /// and a shutdown.
    fn wait_before_retry(&mut self, delay: Duration, at_least: Duration) {
        let jitter = 0.8 + 0.4 * f64::from(jitter_seed() % 1000) / 1000.0;
        let until = Instant::now() + delay.mul_f64(jitter).max(at_least);
        while !self.stopping {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.control.recv_timeout(left) {
                Ok(Control::Flush(reply)) => self.flushes.push(reply),
                Ok(Control::Shutdown(reply)) => {
                    self.stopping = true;
                    self.shutdown_reply = Some(reply);
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => return,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    self.stopping = true;
                }
            }
        }
    }
}

/// A cheap pseudo-random number for retry jitter (no dependency, no global
/// state): the low bits of the clock.
fn jitter_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what it is given; never fails.
    struct Counting(Arc<std::sync::atomic::AtomicUsize>, Vec<u32>);

    impl BatchExporter<u32> for Counting {
        fn take_batch(&mut self, batch: &mut Vec<u32>) {
            std::mem::swap(&mut self.1, batch);
        }
        fn export(&mut self) -> ExportFuture<'_> {
            self.0.fetch_add(self.1.len(), Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
        fn release_batch(&mut self) {
            self.1.clear();
        }
        fn shutdown(&mut self, _timeout: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    fn wait_for(count: &std::sync::atomic::AtomicUsize, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        while count.load(Ordering::SeqCst) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        count.load(Ordering::SeqCst)
    }

    /// A queue of up to 100 items over `exporter`, on a runtime of its own
    /// (one worker thread, which also drives the timer that ends a hung
    /// attempt); the runtime is last, so it is dropped last.
    fn start_queue<E: BatchExporter<u32>>(
        exporter: E,
        config: BatchConfig,
    ) -> (BatchQueue<u32>, Arc<PipelineStats>, tokio::runtime::Runtime) {
        assert_eq!(config.max_queue_size, 100);
        start_queue_of(exporter, config)
    }

    /// A queue of items of any type over `exporter`, as [`start_queue`].
    fn start_queue_of<T: Send + 'static, E: BatchExporter<T>>(
        exporter: E,
        config: BatchConfig,
    ) -> (BatchQueue<T>, Arc<PipelineStats>, tokio::runtime::Runtime) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let stats = PipelineStats::new(crate::config::Signal::Traces, config.max_queue_size);
        let queue = BatchQueue::start(
            "test",
            exporter,
            config,
            rt.handle().clone(),
            Arc::clone(&stats),
            "test".to_string(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        (queue, stats, rt)
    }

    #[test]
    fn a_full_batch_is_exported_without_waiting_for_the_schedule() {
        let exported = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (queue, stats, _rt) = start_queue(
            Counting(Arc::clone(&exported), Vec::new()),
            BatchConfig {
                max_queue_size: 100,
                // Never within the test: only a full batch or a flush exports.
                schedule_delay: Duration::from_secs(3600),
                export_timeout: Duration::from_secs(5),
                max_export_batch_size: 4,
            },
        );
        for i in 0..10 {
            queue.push(i);
        }
        // Two full batches go at once; the two left over wait for the schedule.
        assert_eq!(wait_for(&exported, 8), 8);
        assert!(queue.flush(Duration::from_secs(5)).is_ok());
        assert_eq!(exported.load(Ordering::SeqCst), 10);
        assert_eq!(stats.queued(), 0);
        assert!(queue.shutdown(Duration::from_secs(5)).is_ok());
    }

    /// Items pushed while the queue shuts down are each counted once,
    /// exported or dropped: none is left counted as queued, in the channel
    /// after the worker's last drain.
    #[test]
    fn pushes_racing_a_shutdown_are_each_counted_once() {
        let mut left_queued = Vec::new();
        for round in 0..300 {
            let exported = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (queue, stats, _rt) = start_queue_of(
                Counting(Arc::clone(&exported), Vec::new()),
                BatchConfig {
                    max_queue_size: 100_000,
                    schedule_delay: Duration::from_millis(1),
                    export_timeout: Duration::from_secs(5),
                    max_export_batch_size: 64,
                },
            );
            let queue = Arc::new(queue);
            let pushing = Arc::new(AtomicBool::new(true));
            let pushers: Vec<_> = (0..8)
                .map(|_| {
                    let queue = Arc::clone(&queue);
                    let pushing = Arc::clone(&pushing);
                    std::thread::spawn(move || {
                        while pushing.load(Ordering::Relaxed) {
                            queue.push(round);
                        }
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_micros(500));
            assert!(queue.shutdown(Duration::from_secs(5)).is_ok());
            pushing.store(false, Ordering::Relaxed);
            for p in pushers {
                p.join().unwrap_or_else(|_| panic!("a pusher panicked"));
            }
            let emitted = stats.emitted.load(Ordering::SeqCst);
            let counted = stats.exported.load(Ordering::SeqCst)
                + stats.failed.load(Ordering::SeqCst)
                + stats.dropped.load(Ordering::SeqCst);
            let queued = stats.queued();
            assert_eq!(emitted, counted + queued as u64, "round {round}");
            assert_eq!(
                stats.exported.load(Ordering::SeqCst),
                exported.load(Ordering::SeqCst) as u64
            );
            if queued != 0 {
                left_queued.push((round, queued));
            }
        }
        assert!(
            left_queued.is_empty(),
            "(round, items left counted as queued after shutdown): {left_queued:?}"
        );
    }

    /// Refuses its first attempt as throttled (with an error that is not
    /// transient by itself), then accepts; records when each attempt came.
    struct Throttling {
        attempts: Arc<Mutex<Vec<Instant>>>,
        batch: Vec<u32>,
        ask: Duration,
        asked: Option<Duration>,
    }

    impl BatchExporter<u32> for Throttling {
        fn take_batch(&mut self, batch: &mut Vec<u32>) {
            std::mem::swap(&mut self.batch, batch);
        }
        fn export(&mut self) -> ExportFuture<'_> {
            let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
            attempts.push(Instant::now());
            let first = attempts.len() == 1;
            self.asked = first.then_some(self.ask);
            Box::pin(async move {
                if first {
                    Err(OTelSdkError::InternalFailure(
                        "export failed with gRPC code: ResourceExhausted".into(),
                    ))
                } else {
                    Ok(())
                }
            })
        }
        fn release_batch(&mut self) {
            self.batch.clear();
        }
        fn retry_after(&mut self) -> Option<Duration> {
            self.asked.take()
        }
        fn shutdown(&mut self, _timeout: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    #[test]
    fn a_throttled_batch_is_retried_no_sooner_than_the_collector_asked() {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let ask = Duration::from_millis(900);
        let (queue, stats, _rt) = start_queue(
            Throttling {
                attempts: Arc::clone(&attempts),
                batch: Vec::new(),
                ask,
                asked: None,
            },
            BatchConfig {
                max_queue_size: 100,
                schedule_delay: Duration::from_millis(10),
                export_timeout: Duration::from_secs(5),
                max_export_batch_size: 10,
            },
        );
        for i in 0..3 {
            queue.push(i);
        }
        assert!(queue.flush(Duration::from_secs(10)).is_ok());
        let attempts = attempts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(attempts.len(), 2, "retried once, then accepted");
        // The queue's own first backoff is 250 ms ±20 %: only the collector's
        // delay makes it this long.
        assert!(
            attempts[1] - attempts[0] >= ask,
            "{:?}",
            attempts[1] - attempts[0]
        );
        assert_eq!(stats.exported.load(Ordering::SeqCst), 3);
        assert_eq!(stats.failed.load(Ordering::SeqCst), 0);
        assert!(queue.shutdown(Duration::from_secs(5)).is_ok());
    }

    /// What a scripted attempt does.
    #[derive(Clone, Copy)]
    enum Attempt {
        /// Never answers (the queue's export timeout ends it).
        Hangs,
        /// Fails with this message, saying itself whether to retry.
        Fails(&'static str, bool),
        Succeeds,
    }

    /// Plays its attempts in order (the last one again when they run out).
    struct Scripted {
        script: Vec<Attempt>,
        played: Arc<std::sync::atomic::AtomicUsize>,
        batch: Vec<u32>,
        retryable: bool,
    }

    impl BatchExporter<u32> for Scripted {
        fn take_batch(&mut self, batch: &mut Vec<u32>) {
            std::mem::swap(&mut self.batch, batch);
        }
        fn export(&mut self) -> ExportFuture<'_> {
            let n = self.played.fetch_add(1, Ordering::SeqCst);
            let attempt = self.script[n.min(self.script.len() - 1)];
            self.retryable = matches!(attempt, Attempt::Fails(_, true));
            Box::pin(async move {
                match attempt {
                    Attempt::Hangs => std::future::pending().await,
                    Attempt::Fails(message, _) => {
                        Err(OTelSdkError::InternalFailure(message.into()))
                    }
                    Attempt::Succeeds => Ok(()),
                }
            })
        }
        fn release_batch(&mut self) {
            self.batch.clear();
        }
        fn retryable(&mut self, _message: &str) -> bool {
            self.retryable
        }
        fn shutdown(&mut self, _timeout: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    /// Runs one batch of three through `script`: (attempts, exported, failed).
    fn play(script: Vec<Attempt>) -> (usize, u64, u64) {
        let played = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (queue, stats, _rt) = start_queue(
            Scripted {
                script,
                played: Arc::clone(&played),
                batch: Vec::new(),
                retryable: false,
            },
            BatchConfig {
                max_queue_size: 100,
                schedule_delay: Duration::from_millis(10),
                export_timeout: Duration::from_millis(200),
                max_export_batch_size: 10,
            },
        );
        for i in 0..3 {
            queue.push(i);
        }
        let _ = queue.flush(Duration::from_secs(10));
        let _ = queue.shutdown(Duration::from_secs(5));
        (
            played.load(Ordering::SeqCst),
            stats.exported.load(Ordering::SeqCst),
            stats.failed.load(Ordering::SeqCst),
        )
    }

    /// The exporter says whether a failure is worth another attempt; its
    /// message is not read back (one that would read as transient is not
    /// retried when the exporter says so, and the other way round), and the
    /// queue's own timeout is always retried.
    #[test]
    fn the_exporter_decides_what_is_retried_and_a_timeout_always_is() {
        use Attempt::*;
        let final_refusal = Fails("OTLP span export failed: network error", false);
        assert_eq!(play(vec![final_refusal]), (1, 0, 3));
        let passing_trouble = Fails(
            "OTLP span export failed with gRPC code: InvalidArgument",
            true,
        );
        assert_eq!(play(vec![passing_trouble, Succeeds]), (2, 3, 0));
        assert_eq!(play(vec![Hangs, Succeeds]), (2, 3, 0));
    }

    #[test]
    fn transient_failures_follow_the_otlp_failure_classes() {
        for e in [
            "TonicTracesClient export failed with gRPC code: Unavailable: tcp connect error",
            "TonicLogsClient export failed with gRPC code: DeadlineExceeded",
            // The collector died with the request in flight (seen with a
            // SIGKILLed rotel): tonic makes up an Unknown status for it.
            "TonicTracesClient export failed with gRPC code: Unknown: transport error: \
             connection error: connection reset",
            "HTTP export failed with status code: 503",
            "HTTP export failed with status code: 429",
            "HTTP export failed: network error",
        ] {
            assert!(is_transient(e), "{e}");
        }
        for e in [
            "TonicTracesClient export failed with gRPC code: InvalidArgument",
            "TonicTracesClient export failed with gRPC code: Unauthenticated",
            // Unknown from the collector itself (no transport error behind it).
            "TonicTracesClient export failed with gRPC code: Unknown",
            "TonicTracesClient export failed with gRPC code: ResourceExhausted",
            // After the crate's own retries: tonic refusing a large answer.
            "Operation failed: TonicLogsClient export failed with gRPC code: OutOfRange",
            "HTTP export failed with status code: 400",
            "HTTP export failed with status code: 401",
            "something else",
        ] {
            assert!(!is_transient(e), "{e}");
        }
    }

    /// An item whose bound of 100 takes more than [`EAGER_SLOT_BYTES`].
    type Large = [u8; 64 * 1024];

    #[test]
    fn only_a_bound_of_a_few_megabytes_is_allocated_up_front() {
        assert_eq!(data_channel::<u32>(2048).0.capacity(), Some(2048));
        assert_eq!(data_channel::<Large>(64).0.capacity(), Some(64));
        assert_eq!(data_channel::<Large>(65).0.capacity(), None);
        assert_eq!(data_channel::<u32>(usize::MAX).0.capacity(), None);
    }

    /// Holds every batch it is given until `open` is set.
    struct Gated(Arc<AtomicBool>, Vec<Large>);

    impl BatchExporter<Large> for Gated {
        fn take_batch(&mut self, batch: &mut Vec<Large>) {
            std::mem::swap(&mut self.1, batch);
        }
        fn export(&mut self) -> ExportFuture<'_> {
            let open = Arc::clone(&self.0);
            Box::pin(async move {
                while !open.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(())
            })
        }
        fn release_batch(&mut self) {
            self.1.clear();
        }
        fn shutdown(&mut self, _timeout: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    /// Encodes in place, as the OTLP exporter does, and records the
    /// capacity of every batch vector it is handed.
    struct Measuring(Arc<Mutex<Vec<usize>>>);

    impl BatchExporter<Large> for Measuring {
        fn take_batch(&mut self, batch: &mut Vec<Large>) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(batch.capacity());
            batch.clear();
        }
        fn export(&mut self) -> ExportFuture<'_> {
            Box::pin(async { Ok(()) })
        }
        fn release_batch(&mut self) {}
        fn shutdown(&mut self, _timeout: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    #[test]
    fn a_large_batch_gives_its_memory_back() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (queue, stats, _rt) = start_queue_of(
            Measuring(Arc::clone(&seen)),
            BatchConfig {
                max_queue_size: 300,
                schedule_delay: Duration::from_secs(3600),
                export_timeout: Duration::from_secs(5),
                max_export_batch_size: 300,
            },
        );
        // 200 items of 64 KiB: 12.5 MiB, more than the 64 items kept.
        for _ in 0..200 {
            queue.push([1; 64 * 1024]);
        }
        assert!(queue.flush(Duration::from_secs(10)).is_ok());
        queue.push([2; 64 * 1024]);
        assert!(queue.flush(Duration::from_secs(10)).is_ok());
        assert!(queue.shutdown(Duration::from_secs(10)).is_ok());
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0] >= 200, "{seen:?}");
        assert!(
            seen[1] <= batch_capacity_kept::<Large>(),
            "the second batch reuses at most the kept capacity: {seen:?}"
        );
        assert_eq!(stats.exported.load(Ordering::SeqCst), 201);
    }

    /// The list channel has no bound of its own: the slots alone hold it,
    /// counting the batch in export, and every item is counted once.
    #[test]
    fn a_queue_on_the_list_channel_holds_its_bound_exactly() {
        let open = Arc::new(AtomicBool::new(false));
        let (queue, stats, _rt) = start_queue_of(
            Gated(Arc::clone(&open), Vec::new()),
            BatchConfig {
                max_queue_size: 100,
                schedule_delay: Duration::from_secs(3600),
                export_timeout: Duration::from_secs(3600),
                max_export_batch_size: 40,
            },
        );
        assert_eq!(queue.data.capacity(), None, "a bound above the eager limit");
        for _ in 0..150 {
            queue.push([7; 64 * 1024]);
        }
        assert_eq!(stats.queued(), 100);
        assert_eq!(stats.dropped.load(Ordering::SeqCst), 50);
        open.store(true, Ordering::SeqCst);
        assert!(queue.flush(Duration::from_secs(10)).is_ok());
        assert_eq!(stats.exported.load(Ordering::SeqCst), 100);
        assert_eq!(stats.queued(), 0);
        // Room again once exported.
        queue.push([7; 64 * 1024]);
        assert!(queue.shutdown(Duration::from_secs(10)).is_ok());
        assert_eq!(stats.exported.load(Ordering::SeqCst), 101);
        assert_eq!(stats.dropped.load(Ordering::SeqCst), 50);
    }
}
