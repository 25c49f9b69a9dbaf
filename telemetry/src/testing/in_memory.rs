//! In-memory mode: the same pipelines as production (batch queues, drop
//! accounting, resource), but the exporters keep everything in memory.

use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::in_memory_exporter::LogDataWithResource;
use opentelemetry_sdk::logs::{InMemoryLogExporter, LogBatch, LogExporter};
use opentelemetry_sdk::metrics::InMemoryMetricExporter;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData, SpanExporter};

/// Where [`TelemetryBuilder::with_in_memory`](crate::TelemetryBuilder::with_in_memory)
/// sends spans, logs and metrics. Cheap to clone; clones share the data.
///
/// ```
/// use telemetry::testing::InMemory;
/// let sink = InMemory::new();
/// let telemetry = telemetry::Telemetry::builder("doc-engine")
///     .with_in_memory(&sink)
///     .build()
///     .unwrap();
/// tracing::dispatcher::with_default(telemetry.dispatch(), || {
///     tracing::info_span!("settle").in_scope(|| tracing::info!(amount = 10, "settled"));
/// });
/// telemetry.shutdown().unwrap();
/// assert_eq!(sink.spans()[0].name, "settle");
/// assert_eq!(sink.logs().len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemory {
    spans: InMemorySpanExporter,
    logs: InMemoryLogExporter,
    metrics: InMemoryMetricExporter,
}

impl InMemory {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spans exported so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans.get_finished_spans().unwrap_or_default()
    }

    /// Log records exported so far.
    pub fn logs(&self) -> Vec<LogDataWithResource> {
        self.logs.get_emitted_logs().unwrap_or_default()
    }

    /// Every metric collection exported so far, oldest first.
    pub fn metrics(&self) -> Vec<ResourceMetrics> {
        self.metrics.get_finished_metrics().unwrap_or_default()
    }

    pub(crate) fn span_exporter(&self) -> KeepOnShutdown<InMemorySpanExporter> {
        KeepOnShutdown(self.spans.clone())
    }
    pub(crate) fn log_exporter(&self) -> KeepOnShutdown<InMemoryLogExporter> {
        KeepOnShutdown(self.logs.clone())
    }
    pub(crate) fn metric_exporter(&self) -> InMemoryMetricExporter {
        self.metrics.clone()
    }
}

/// The SDK's in-memory exporters forget everything on shutdown; tests want
/// to look after the guard flushed, so shutdown is not forwarded.
#[derive(Debug, Default)]
pub(crate) struct KeepOnShutdown<E>(E);

impl SpanExporter for KeepOnShutdown<InMemorySpanExporter> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.export(batch).await
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}

impl LogExporter for KeepOnShutdown<InMemoryLogExporter> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.0.export(batch).await
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}
