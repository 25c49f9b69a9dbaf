//! Exporters as values.
//!
//! What `OTEL_<SIGNAL>_EXPORTER` selects and what code hands the builder
//! become the same thing here — a labelled exporter of one signal — so each
//! signal's pipeline is built one way, whatever the exporter is (OTLP,
//! console, in-memory, or one of the service's own).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogExporter, SdkLogRecord};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::batch::{BatchExporter, ExportFuture};
use crate::config::{Config, LogExporterKind, MetricExporterKind, SpanExporterKind};
use crate::console::{ConsoleLogExporter, ConsoleSpanExporter};
use crate::error::InitError;
use crate::layers::SharedWriter;
use crate::processors::{LogExporterAdapter, SpanExporterAdapter};

/// One log record as the batch queue carries it.
pub(crate) type LogItem = (SdkLogRecord, InstrumentationScope);

/// A batch exporter that still needs the resource (exporters are handed
/// the resource once, before the first export).
pub(crate) type PendingBatchExporter<T> =
    Box<dyn FnOnce(&Resource) -> Box<dyn BatchExporter<T>> + Send>;

/// An exporter of one signal and the name its health and warnings use.
pub(crate) struct Destination<X> {
    /// The OTLP endpoint, `stdout`, or the exporter's type name.
    pub(crate) label: String,
    pub(crate) exporter: X,
}

impl<X> std::fmt::Debug for Destination<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

pub(crate) type SpanDestination = Destination<PendingBatchExporter<SpanData>>;
pub(crate) type LogDestination = Destination<PendingBatchExporter<LogItem>>;
pub(crate) type MetricDestination = Destination<BoxedMetricExporter>;

/// A span exporter of any type, masked and batched like every other.
pub(crate) fn span_destination<E: SpanExporter + 'static>(
    label: impl Into<String>,
    exporter: E,
) -> SpanDestination {
    Destination {
        label: label.into(),
        exporter: Box::new(move |resource: &Resource| {
            Box::new(SpanExporterAdapter::new(exporter, resource)) as Box<dyn BatchExporter<_>>
        }),
    }
}

/// A log exporter of any type, masked and batched like every other.
pub(crate) fn log_destination<E: LogExporter + 'static>(
    label: impl Into<String>,
    exporter: E,
) -> LogDestination {
    Destination {
        label: label.into(),
        exporter: Box::new(move |resource: &Resource| {
            Box::new(LogExporterAdapter::new(exporter, resource)) as Box<dyn BatchExporter<_>>
        }),
    }
}

/// A push metric exporter of any type.
pub(crate) fn metric_destination<E: PushMetricExporter>(
    label: impl Into<String>,
    exporter: E,
) -> MetricDestination {
    Destination {
        label: label.into(),
        exporter: BoxedMetricExporter {
            exporter: Box::new(exporter),
            rejected: None,
        },
    }
}

/// The name a handed-in exporter goes by: its type's own name, without
/// module paths (`InMemorySpanExporter`, not `opentelemetry_sdk::…`).
pub(crate) fn type_label<E>() -> String {
    let full = std::any::type_name::<E>();
    let outer = full.split('<').next().unwrap_or(full);
    outer.rsplit("::").next().unwrap_or(outer).to_string()
}

/// Telemetry's OTLP exporter of `items`, its transport checked now (inside
/// telemetry's runtime: tonic spawns its connection task there), its
/// encoder made for the resource once known.
fn otlp_destination<T: 'static, E: crate::otlp_export::EncodeBatch<T>>(
    cfg: &crate::config::OtlpConfig,
    items: &'static crate::otlp_export::Items,
    encoder: fn(&Resource) -> E,
) -> Result<Destination<PendingBatchExporter<T>>, InitError> {
    let wire = crate::otlp_export::wire(cfg, items)?;
    Ok(Destination {
        label: cfg.endpoint.clone(),
        exporter: Box::new(move |resource: &Resource| {
            Box::new(wire.into_exporter(encoder(resource))) as Box<dyn BatchExporter<T>>
        }),
    })
}

/// The span exporters `OTEL_TRACES_EXPORTER` selects; `console` writes
/// where stdout logs go.
pub(crate) fn spans_from(
    config: &Config,
    stdout: &SharedWriter,
) -> Result<Vec<SpanDestination>, InitError> {
    let mut out = Vec::new();
    for kind in &config.traces_exporters {
        out.push(match kind {
            SpanExporterKind::Otlp => otlp_destination(
                &config.otlp_traces,
                &crate::otlp_export::SPANS,
                crate::otlp_spans::SpanEncoder::new,
            )?,
            SpanExporterKind::Console => {
                span_destination("stdout", ConsoleSpanExporter::new(stdout.clone()))
            }
        });
    }
    Ok(out)
}

/// The log exporters `OTEL_LOGS_EXPORTER` selects; `console` writes where
/// stdout logs go.
pub(crate) fn logs_from(
    config: &Config,
    stdout: &SharedWriter,
) -> Result<Vec<LogDestination>, InitError> {
    let mut out = Vec::new();
    for kind in &config.logs_exporters {
        out.push(match kind {
            LogExporterKind::Otlp => otlp_destination(
                &config.otlp_logs,
                &crate::otlp_export::LOG_RECORDS,
                crate::otlp_logs::LogEncoder::new,
            )?,
            LogExporterKind::Console => {
                log_destination("stdout", ConsoleLogExporter::new(stdout.clone()))
            }
        });
    }
    Ok(out)
}

/// The push metric exporters `OTEL_METRICS_EXPORTER` selects (Prometheus is
/// a pull reader, not an exporter: see [`Config::metrics_exporters`]).
pub(crate) fn metrics_from(config: &Config) -> Result<Vec<MetricDestination>, InitError> {
    let mut out = Vec::new();
    for kind in &config.metrics_exporters {
        match kind {
            MetricExporterKind::Otlp => {
                let (exporter, rejected) = crate::otlp_metrics::OtlpMetricExporter::new(
                    &config.otlp_metrics,
                    config.metrics_temporality,
                )?;
                let mut destination =
                    metric_destination(config.otlp_metrics.endpoint.clone(), exporter);
                destination.exporter.rejected = Some(rejected);
                out.push(destination);
            }
            MetricExporterKind::Console => out.push(metric_destination(
                "stdout",
                opentelemetry_stdout::MetricExporter::default(),
            )),
            MetricExporterKind::Prometheus => {}
        }
    }
    Ok(out)
}

/// [`PushMetricExporter`] is not object-safe (its `export` is an `async fn`
/// in a trait); this is the object-safe face of it.
trait DynMetricExporter: Send + Sync + 'static {
    fn export_boxed<'a>(&'a self, metrics: &'a ResourceMetrics) -> ExportFuture<'a>;
    fn force_flush(&self) -> OTelSdkResult;
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult;
    fn temporality(&self) -> Temporality;
}

impl<E: PushMetricExporter> DynMetricExporter for E {
    fn export_boxed<'a>(&'a self, metrics: &'a ResourceMetrics) -> ExportFuture<'a> {
        Box::pin(PushMetricExporter::export(self, metrics))
    }
    fn force_flush(&self) -> OTelSdkResult {
        PushMetricExporter::force_flush(self)
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        PushMetricExporter::shutdown_with_timeout(self, timeout)
    }
    fn temporality(&self) -> Temporality {
        PushMetricExporter::temporality(self)
    }
}

/// Any push metric exporter, behind one type.
pub(crate) struct BoxedMetricExporter {
    exporter: Box<dyn DynMetricExporter>,
    /// Where the exporter leaves the data points its last export's answer
    /// rejected, if it reads them (telemetry's OTLP exporter does).
    rejected: Option<Arc<AtomicU64>>,
}

impl BoxedMetricExporter {
    /// The data points the last export's answer rejected (0 if the exporter
    /// does not say).
    pub(crate) fn take_rejected(&self) -> u64 {
        self.rejected
            .as_ref()
            .map_or(0, |r| r.swap(0, Ordering::Relaxed))
    }
}

impl std::fmt::Debug for BoxedMetricExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxedMetricExporter")
    }
}

impl PushMetricExporter for BoxedMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        self.exporter.export_boxed(metrics).await
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.exporter.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.exporter.temporality()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_bare_type_name() {
        assert_eq!(
            type_label::<opentelemetry_stdout::SpanExporter>(),
            "SpanExporter"
        );
        assert_eq!(type_label::<Vec<String>>(), "Vec");
    }

    #[test]
    fn configured_exporters_follow_the_environment() {
        let config = Config::from_env(&[
            ("OTEL_TRACES_EXPORTER", "console"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "prometheus,console"),
        ])
        .unwrap();
        let stdout = SharedWriter(std::sync::Arc::new(
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::sink),
        ));
        let spans = spans_from(&config, &stdout).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].label, "stdout");
        assert!(logs_from(&config, &stdout).unwrap().is_empty());
        // Prometheus is a reader, not a push exporter.
        let metrics = metrics_from(&config).unwrap();
        assert_eq!(metrics.len(), 1);
        assert_eq!(metrics[0].label, "stdout");
    }
}
