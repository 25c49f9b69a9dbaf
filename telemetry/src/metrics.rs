//! Metric pipeline pieces: second-scale histogram buckets, an exporter wrapper
//! that counts data points and bounds each export, and telemetry's own
//! `otel.sdk.*` metrics.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{Aggregation, Instrument, InstrumentKind, Stream, Temporality};

use crate::config::{HistogramAggregation, Signal, ViewConfig};
use crate::health::PipelineStats;

// Shared with `services-glue` through `telemetry-api`; `crate::SECONDS_BUCKETS`
// re-exports it from here.
pub use telemetry_api::SECONDS_BUCKETS;

/// The one view of the meter provider: the configured views first (the
/// first that selects an instrument decides), then per-name boundaries,
/// seconds buckets for unit `s`, else the instrument's own advice or
/// defaults.
pub(crate) fn view(
    views: Vec<ViewConfig>,
    overrides: HashMap<String, Vec<f64>>,
    aggregation: HistogramAggregation,
) -> impl Fn(&Instrument) -> Option<Stream> + Send + Sync + 'static {
    move |inst: &Instrument| {
        let default = histogram_aggregation(inst, &overrides, aggregation);
        if let Some(view) = views.iter().find(|v| v.selects(inst)) {
            return view.stream(default);
        }
        Stream::builder().with_aggregation(default?).build().ok()
    }
}

/// What telemetry aggregates a histogram as; `None` leaves the SDK's
/// default (every other instrument, and histograms with advice).
fn histogram_aggregation(
    inst: &Instrument,
    overrides: &HashMap<String, Vec<f64>>,
    aggregation: HistogramAggregation,
) -> Option<Aggregation> {
    if inst.kind() != InstrumentKind::Histogram {
        return None;
    }
    if aggregation == HistogramAggregation::Base2Exponential {
        // The specification's defaults: 160 buckets, scale 20 (it falls as
        // the recorded range widens), min and max recorded.
        return Some(Aggregation::Base2ExponentialHistogram {
            max_size: 160,
            max_scale: 20,
            record_min_max: true,
        });
    }
    let boundaries = match overrides.get(inst.name()) {
        Some(b) => b.clone(),
        None if inst.unit() == "s" => SECONDS_BUCKETS.to_vec(),
        None => return None,
    };
    Some(Aggregation::ExplicitBucketHistogram {
        boundaries,
        record_min_max: true,
    })
}

/// Wraps a push exporter: counts data points, bounds each export by a
/// timeout on telemetry's runtime (the SDK's periodic reader has none) and
/// reports failures through [`PipelineStats`].
pub(crate) struct CountingMetricExporter {
    pub(crate) inner: crate::exporters::BoxedMetricExporter,
    pub(crate) stats: Arc<PipelineStats>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) timeout: Duration,
    pub(crate) endpoint: String,
    /// Set at shutdown: the final export must end by then.
    pub(crate) deadline: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for CountingMetricExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingMetricExporter")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl CountingMetricExporter {
    /// Exports on telemetry's runtime, bounded by the export timeout (or the
    /// shutdown deadline). Callers must be plain threads, never runtime workers.
    pub(crate) fn export_blocking(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let n = count_points(metrics);
        self.stats.emitted.fetch_add(n, Ordering::Relaxed);
        // The periodic reader polls us on its own plain thread, so blocking
        // on telemetry's runtime here is safe and gives us tokio timers.
        let timeout = match self.deadline.lock().ok().and_then(|d| *d) {
            Some(d) => self
                .timeout
                .min(d.saturating_duration_since(Instant::now())),
            None => self.timeout,
        };
        let result = self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, self.inner.export(metrics)).await });
        match result {
            Ok(Ok(())) => {
                // Data points the collector rejected in a partial success
                // are lost.
                let rejected = self.inner.take_rejected();
                self.stats.export_answered(n, rejected, &self.endpoint);
                Ok(())
            }
            Ok(Err(e)) => {
                self.stats.export_failed(n, &self.endpoint, &e.to_string());
                Err(e)
            }
            Err(_) => {
                let msg = format!("export timed out after {timeout:?}");
                self.stats.export_failed(n, &self.endpoint, &msg);
                Err(OTelSdkError::Timeout(timeout))
            }
        }
    }
}

impl PushMetricExporter for CountingMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.export_blocking(metrics)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// Number of data points in one collection.
pub(crate) fn count_points(metrics: &ResourceMetrics) -> u64 {
    fn points<T>(d: &MetricData<T>) -> usize {
        match d {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    metrics
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .map(|m| {
            let n = match m.data() {
                AggregatedMetrics::F64(d) => points(d),
                AggregatedMetrics::U64(d) => points(d),
                AggregatedMetrics::I64(d) => points(d),
            };
            n as u64
        })
        .sum()
}

/// Registers telemetry's own metrics (semantic-convention `otel.sdk.*`
/// names) as observable instruments reading the pipeline counters.
pub(crate) fn register_self_metrics(meter: &Meter, pipelines: &[Arc<PipelineStats>]) {
    for (i, stats) in pipelines.iter().enumerate() {
        let (processor_type, exporter_type, item) = match stats.signal {
            Signal::Traces => ("batching_span_processor", "otlp_span_exporter", "span"),
            Signal::Logs => ("batching_log_processor", "otlp_log_exporter", "log"),
            Signal::Metrics => ("", "otlp_metric_exporter", "metric_data_point"),
        };
        let exporter_attrs = vec![
            KeyValue::new("otel.component.type", exporter_type),
            KeyValue::new("otel.component.name", format!("{exporter_type}/{i}")),
        ];
        {
            let stats = Arc::clone(stats);
            let ok = exporter_attrs.clone();
            let mut failed = exporter_attrs.clone();
            failed.push(KeyValue::new("error.type", "export_failed"));
            // Rejected items count as failed, with `rejected` as the cause
            // (the semantic conventions' rule for partial successes).
            let mut rejected = exporter_attrs.clone();
            rejected.push(KeyValue::new("error.type", "rejected"));
            meter
                .u64_observable_counter(format!("otel.sdk.exporter.{item}.exported"))
                .with_unit(format!("{{{item}}}"))
                .with_description(
                    "Items the exporter sent; with error.type, items lost in failed exports \
                     (export_failed) or rejected by the collector (rejected)",
                )
                .with_callback(move |o| {
                    let lost = stats.failed.load(Ordering::Relaxed);
                    let refused = stats.rejected.load(Ordering::Relaxed);
                    o.observe(stats.exported.load(Ordering::Relaxed), &ok);
                    o.observe(lost.saturating_sub(refused), &failed);
                    o.observe(refused, &rejected);
                })
                .build();
        }
        {
            let stats = Arc::clone(stats);
            let mut attrs = exporter_attrs.clone();
            attrs.push(KeyValue::new("signal", stats.signal.as_str()));
            meter
                .u64_observable_gauge("telemetry.exporter.healthy")
                .with_description("1 when the last export of this signal succeeded (or none was due yet), 0 while failing")
                .with_callback(move |o| {
                    let healthy = stats.consecutive_failures.load(Ordering::Relaxed) == 0;
                    o.observe(u64::from(healthy), &attrs);
                })
                .build();
        }
        if processor_type.is_empty() {
            continue;
        }
        let processor_attrs = vec![
            KeyValue::new("otel.component.type", processor_type),
            KeyValue::new("otel.component.name", format!("{processor_type}/{i}")),
        ];
        {
            let stats = Arc::clone(stats);
            let ok = processor_attrs.clone();
            let mut full = processor_attrs.clone();
            full.push(KeyValue::new("error.type", "queue_full"));
            meter
                .u64_observable_counter(format!("otel.sdk.processor.{item}.processed"))
                .with_unit(format!("{{{item}}}"))
                .with_description(
                    "Items accepted by the processor; with error.type=queue_full, items dropped",
                )
                .with_callback(move |o| {
                    let emitted = stats.emitted.load(Ordering::Relaxed);
                    let dropped = stats.dropped.load(Ordering::Relaxed);
                    o.observe(emitted.saturating_sub(dropped), &ok);
                    o.observe(dropped, &full);
                })
                .build();
        }
        {
            let stats = Arc::clone(stats);
            let attrs = processor_attrs.clone();
            meter
                .i64_observable_up_down_counter(format!("otel.sdk.processor.{item}.queue.size"))
                .with_unit(format!("{{{item}}}"))
                .with_description("Items waiting in the processor's queue")
                .with_callback(move |o| {
                    let q = i64::try_from(stats.queued()).unwrap_or(i64::MAX);
                    o.observe(q, &attrs);
                })
                .build();
        }
        {
            let capacity = i64::try_from(stats.capacity).unwrap_or(i64::MAX);
            let attrs = processor_attrs.clone();
            meter
                .i64_observable_up_down_counter(format!("otel.sdk.processor.{item}.queue.capacity"))
                .with_unit(format!("{{{item}}}"))
                .with_description("Most items the processor's queue holds")
                .with_callback(move |o| o.observe(capacity, &attrs))
                .build();
        }
    }
}
