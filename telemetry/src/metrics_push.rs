//! One reader for both metric paths.
//!
//! With `OTEL_METRICS_EXPORTER=otlp,prometheus` the SDK would aggregate every
//! measurement twice, once per reader (measured at 1.65× the cost of one).
//! Instead the Prometheus reader is the only reader, and this thread pushes
//! its cumulative collections to every push exporter (OTLP, console, or
//! one handed to the builder) every export interval: one
//! aggregation, two paths, identical numbers on both.

use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use opentelemetry_prometheus::PrometheusExporter;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, Pipeline, Temporality};

use crate::metrics::CountingMetricExporter;

/// The Prometheus reader, shared between the meter provider and the push thread.
#[derive(Debug, Clone)]
pub(crate) struct SharedReader(pub(crate) Arc<PrometheusExporter>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

enum Control {
    Flush(Sender<()>),
    Shutdown(Sender<()>),
}

/// The OTLP push half: a thread collecting from the shared reader.
#[derive(Debug)]
pub(crate) struct MetricsPush {
    control: Sender<Control>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Control::Flush(_) => "Flush",
            Control::Shutdown(_) => "Shutdown",
        })
    }
}

impl MetricsPush {
    pub(crate) fn start(
        reader: SharedReader,
        exporters: Vec<CountingMetricExporter>,
        interval: Duration,
    ) -> std::io::Result<MetricsPush> {
        let (control, rx) = bounded::<Control>(4);
        let thread = std::thread::Builder::new()
            .name("otel-metrics-push".into())
            .spawn(move || {
                let push = || {
                    let mut rm = ResourceMetrics::default();
                    if reader.collect(&mut rm).is_ok() {
                        // Failures are counted and warned about by the exporter wrapper.
                        for exporter in &exporters {
                            let _ = exporter.export_blocking(&rm);
                        }
                    }
                };
                let mut next = Instant::now() + interval;
                loop {
                    match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            push();
                            next = Instant::now() + interval;
                        }
                        Ok(Control::Flush(reply)) => {
                            push();
                            let _ = reply.send(());
                        }
                        Ok(Control::Shutdown(reply)) => {
                            push();
                            for exporter in &exporters {
                                let _ = exporter.shutdown_with_timeout(Duration::from_secs(1));
                            }
                            let _ = reply.send(());
                            return;
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                    }
                }
            })?;
        Ok(MetricsPush {
            control,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Pushes once now; waits at most `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) {
        let (tx, rx) = bounded(1);
        if self
            .control
            .send_timeout(Control::Flush(tx), timeout)
            .is_ok()
        {
            let _ = rx.recv_timeout(timeout);
        }
    }

    /// Final push and stop, by `deadline`. False when it did not finish in time.
    pub(crate) fn shutdown(&self, deadline: Instant) -> bool {
        let remaining = || deadline.saturating_duration_since(Instant::now());
        let (tx, rx) = bounded(1);
        if self
            .control
            .send_timeout(Control::Shutdown(tx), remaining())
            .is_err()
        {
            return false;
        }
        match rx.recv_timeout(remaining()) {
            Ok(()) => {
                if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
                    let _ = t.join();
                }
                true
            }
            Err(_) => false,
        }
    }
}
