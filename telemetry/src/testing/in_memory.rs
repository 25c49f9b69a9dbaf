//! In-memory mode: the same pipelines as production (batch queues, drop
//! accounting, masking, resource), with exporters that keep what they are
//! given — converted to OTLP and read into the receiver's model, so a test
//! asserts the same way whether the data crossed a socket or not.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use otlp_receiver::{self as model, ReceivedLog, ReceivedMetric, ReceivedSpan, Transport};

/// Where [`TelemetryBuilder::with_in_memory`](crate::TelemetryBuilder::with_in_memory)
/// sends spans, logs and metrics: one exporter per signal, handed to the
/// builder like any other. Cheap to clone; clones share the data.
///
/// ```
/// use telemetry::testing::{InMemory, find_span};
/// let sink = InMemory::new();
/// let telemetry = telemetry::Telemetry::builder("doc-engine")
///     .with_in_memory(&sink)
///     .set_default()?;
/// tracing::info_span!("settle").in_scope(|| tracing::info!(amount = 10, "settled"));
/// telemetry.shutdown()?;
/// let spans = sink.spans();
/// assert_eq!(find_span(&spans, "settle").unwrap().resource.str("service.name"), Some("doc-engine"));
/// assert_eq!(sink.logs()[0].attributes.i64("amount"), Some(10));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemory {
    store: Arc<Mutex<Store>>,
}

#[derive(Debug, Default)]
struct Store {
    spans: Vec<ReceivedSpan>,
    metrics: Vec<ReceivedMetric>,
    logs: Vec<ReceivedLog>,
}

impl InMemory {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spans exported so far, in export order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// Log records exported so far, in export order.
    pub fn logs(&self) -> Vec<ReceivedLog> {
        self.lock().logs.clone()
    }

    /// Every metric of every collection exported so far, oldest first
    /// (periodic exports repeat metrics: [`find_metric`](super::find_metric)
    /// takes the latest).
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.lock().metrics.clone()
    }

    /// Forgets everything kept so far.
    pub fn clear(&self) {
        *self.lock() = Store::default();
    }

    /// The span exporter writing here.
    pub fn span_exporter(&self) -> InMemorySpanExporter {
        InMemorySpanExporter {
            sink: self.clone(),
            resource: ResourceAttributesWithSchema::default(),
        }
    }

    /// The log exporter writing here.
    pub fn log_exporter(&self) -> InMemoryLogExporter {
        InMemoryLogExporter {
            sink: self.clone(),
            resource: ResourceAttributesWithSchema::default(),
        }
    }

    /// The metric exporter writing here (cumulative temporality).
    pub fn metric_exporter(&self) -> InMemoryMetricExporter {
        InMemoryMetricExporter { sink: self.clone() }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panicking test thread must not make every later assertion panic too.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl crate::TelemetryBuilder {
    /// Sends all three signals to `sink`'s exporters instead of what the
    /// environment selects (a Prometheus endpoint, if configured, stays),
    /// through the same batch pipelines as production.
    pub fn with_in_memory(self, sink: &InMemory) -> Self {
        self.with_span_exporter(sink.span_exporter())
            .with_log_exporter(sink.log_exporter())
            .with_metric_exporter(sink.metric_exporter())
    }
}

/// Keeps spans in an [`InMemory`]; unlike the SDK's, it keeps them after
/// shutdown, so a test can look once the guard has flushed.
#[derive(Debug)]
pub struct InMemorySpanExporter {
    sink: InMemory,
    resource: ResourceAttributesWithSchema,
}

impl SpanExporter for InMemorySpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        let spans = model::spans_from(&request, Transport::InMemory);
        self.sink.lock().spans.extend(spans);
        Ok(())
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

/// Keeps log records in an [`InMemory`], after shutdown too.
#[derive(Debug)]
pub struct InMemoryLogExporter {
    sink: InMemory,
    resource: ResourceAttributesWithSchema,
}

impl LogExporter for InMemoryLogExporter {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let request = ExportLogsServiceRequest {
            resource_logs: group_logs_by_resource_and_scope(&batch, &self.resource),
        };
        let logs = model::logs_from(&request, Transport::InMemory);
        self.sink.lock().logs.extend(logs);
        Ok(())
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}

/// Keeps metric collections in an [`InMemory`], after shutdown too.
#[derive(Debug)]
pub struct InMemoryMetricExporter {
    sink: InMemory,
}

impl PushMetricExporter for InMemoryMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let request = ExportMetricsServiceRequest::from(metrics);
        let metrics = model::metrics_from(&request, Transport::InMemory);
        self.sink.lock().metrics.extend(metrics);
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}
