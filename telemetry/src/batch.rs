//! A bounded batch queue with one worker thread per exporter.
//!
//! Why not the SDK's batch processors: they drop silently when full, expose no
//! queue size, and their shutdown can deadlock when the exporter's I/O lives on
//! a `current_thread` runtime that is blocked waiting for them. Here:
//! - the hot path is one `try_send`, one relaxed atomic add and one
//!   compare-and-swap reserving a queue slot (a plain load when full);
//! - every item is counted exactly once (exported, failed or dropped);
//! - at most `max_queue_size` items are held at any time, counting the batch
//!   being exported, and `queued` says exactly how many;
//! - exports run on telemetry's own tokio runtime, never the application's,
//!   each bounded by its export timeout;
//! - flush and shutdown reply over a channel, so callers wait with a deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

use crate::config::BatchConfig;
use crate::health::PipelineStats;

/// A boxed export future borrowing the exporter.
pub(crate) type ExportFuture<'a> = Pin<Box<dyn Future<Output = OTelSdkResult> + Send + 'a>>;

/// What the worker drives: one exporter of items `T`.
pub(crate) trait BatchExporter<T>: Send + 'static {
    /// Exports and clears `batch`.
    fn export<'a>(&'a mut self, batch: &'a mut Vec<T>) -> ExportFuture<'a>;
    /// Releases the exporter's resources.
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult;
}

enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// The sending half, owned by a span or log processor.
#[derive(Debug)]
pub(crate) struct BatchQueue<T> {
    data: Sender<T>,
    control: Sender<Control>,
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
        let (data, data_rx) = bounded(config.max_queue_size);
        let (control, control_rx) = bounded(8);
        let worker = Worker {
            exporter,
            config,
            runtime,
            stats: Arc::clone(&stats),
            endpoint,
            data: data_rx,
            control: control_rx,
            batch: Vec::with_capacity(config.max_export_batch_size),
        };
        let handle = std::thread::Builder::new()
            .name(format!("otel-{name}"))
            .spawn(move || worker.run())?;
        Ok(BatchQueue {
            data,
            control,
            stats,
            capacity: config.max_queue_size,
            shut_down: AtomicBool::new(false),
            worker: Mutex::new(Some(handle)),
        })
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
            Ok(()) => {}
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
    batch: Vec<T>,
}

impl<T: Send + 'static, E: BatchExporter<T>> Worker<T, E> {
    fn run(mut self) {
        let mut batch_started: Option<Instant> = None;
        loop {
            let wait = match batch_started {
                Some(t) => self.config.schedule_delay.saturating_sub(t.elapsed()),
                None => Duration::from_secs(3600),
            };
            select! {
                recv(self.data) -> item => match item {
                    Ok(item) => {
                        self.batch.push(item);
                        batch_started.get_or_insert_with(Instant::now);
                        if self.batch.len() >= self.config.max_export_batch_size {
                            self.export_batch();
                            batch_started = None;
                        }
                    }
                    // Every sender is gone: the processor was dropped.
                    Err(_) => {
                        self.drain();
                        let _ = self.exporter.shutdown(self.config.export_timeout);
                        return;
                    }
                },
                recv(self.control) -> msg => match msg {
                    Ok(Control::Flush(reply)) => {
                        self.drain();
                        batch_started = None;
                        let _ = reply.send(());
                    }
                    Ok(Control::Shutdown(reply)) => {
                        self.drain();
                        let _ = self.exporter.shutdown(self.config.export_timeout);
                        let _ = reply.send(());
                        return;
                    }
                    Err(_) => {
                        self.drain();
                        return;
                    }
                },
                default(wait) => {
                    if !self.batch.is_empty() {
                        self.export_batch();
                    }
                    batch_started = None;
                }
            }
        }
    }

    /// Exports everything in the channel, in batches.
    fn drain(&mut self) {
        loop {
            while self.batch.len() < self.config.max_export_batch_size {
                match self.data.try_recv() {
                    Ok(item) => self.batch.push(item),
                    Err(_) => break,
                }
            }
            if self.batch.is_empty() {
                return;
            }
            self.export_batch();
        }
    }

    fn export_batch(&mut self) {
        let n = self.batch.len() as u64;
        let timeout = self.config.export_timeout;
        let exporter = &mut self.exporter;
        let batch = &mut self.batch;
        let result = self
            .runtime
            .block_on(async move { tokio::time::timeout(timeout, exporter.export(batch)).await });
        self.batch.clear();
        match result {
            Ok(Ok(())) => self.stats.export_succeeded(n, &self.endpoint),
            Ok(Err(e)) => self.stats.export_failed(n, &self.endpoint, &e.to_string()),
            Err(_) => self.stats.export_failed(
                n,
                &self.endpoint,
                &format!("export timed out after {timeout:?}"),
            ),
        }
        // Accounted as exported or failed: release their queue slots.
        self.stats.queued.fetch_sub(n as usize, Ordering::Relaxed);
    }
}
