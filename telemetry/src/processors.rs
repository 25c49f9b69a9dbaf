//! Span and log processors on top of [`BatchQueue`](crate::batch::BatchQueue),
//! and the adapters that let it drive the SDK's exporters.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opentelemetry::logs::LogRecord as _;
use opentelemetry::logs::Logger as _;
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::logs::Severity;
use opentelemetry::{Context, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    LogBatch, LogExporter, LogProcessor, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::batch::{BatchExporter, BatchQueue, ExportFuture};

/// Feeds ended spans into a [`BatchQueue`], truncating long string values
/// (the SDK has no value-length limit of its own).
///
/// Shared: the tracer provider ends the spans made through its tracers
/// here, and telemetry's layer hands it the spans it records itself
/// (`crate::recorded_spans`).
#[derive(Debug, Clone)]
pub(crate) struct QueueSpanProcessor(Arc<SpanQueue>);

#[derive(Debug)]
struct SpanQueue {
    queue: BatchQueue<SpanData>,
    max_value_len: Option<usize>,
}

impl QueueSpanProcessor {
    pub(crate) fn new(queue: BatchQueue<SpanData>, max_value_len: Option<usize>) -> Self {
        QueueSpanProcessor(Arc::new(SpanQueue {
            queue,
            max_value_len,
        }))
    }

    /// Whether the queue was shut down with the tracer provider.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.0.queue.is_shut_down()
    }

    /// Queues a sampled span, its long values cut.
    pub(crate) fn push(&self, mut span: SpanData) {
        if let Some(limit) = self.0.max_value_len {
            truncate_all(&mut span.attributes, limit);
            for event in span.events.events.iter_mut() {
                truncate_all(&mut event.attributes, limit);
            }
            for link in span.links.links.iter_mut() {
                truncate_all(&mut link.attributes, limit);
            }
        }
        self.0.queue.push(span);
    }
}

impl SpanProcessor for QueueSpanProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.push(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.queue.flush(Duration::from_secs(5))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.queue.shutdown(timeout)
    }
}

fn truncate_all(attrs: &mut [KeyValue], limit: usize) {
    for kv in attrs.iter_mut() {
        if let Value::String(s) = &kv.value
            && s.as_str().chars().count() > limit
        {
            let cut: String = s.as_str().chars().take(limit).collect();
            kv.value = Value::from(cut);
        }
    }
}

/// Feeds log records into a [`BatchQueue`]. Records bridged from `tracing`
/// carry only an observed time; the event time is set from it here so
/// backends sort them correctly.
#[derive(Debug)]
pub(crate) struct QueueLogProcessor {
    pub(crate) queue: BatchQueue<(SdkLogRecord, InstrumentationScope)>,
    /// Set on the provider's last processor only: the logger drops each
    /// record once its processors have run, so the last one takes the
    /// record (leaving a blank one made by this logger) instead of copying
    /// its body and attributes. The others clone.
    pub(crate) take_with: Option<SdkLogger>,
}

impl QueueLogProcessor {
    /// A processor for `queue`; `last` when no processor follows it.
    pub(crate) fn new(queue: BatchQueue<(SdkLogRecord, InstrumentationScope)>, last: bool) -> Self {
        let take_with = last.then(|| {
            SdkLoggerProvider::builder()
                .build()
                .logger("telemetry.blank")
        });
        QueueLogProcessor { queue, take_with }
    }
}

impl LogProcessor for QueueLogProcessor {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        if record.timestamp().is_none() {
            let t = record.observed_timestamp().unwrap_or_else(SystemTime::now);
            record.set_timestamp(t);
        }
        let record = match &self.take_with {
            Some(blank) => std::mem::replace(record, blank.create_log_record()),
            None => record.clone(),
        };
        self.queue.push((record, scope.clone()));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.queue.flush(Duration::from_secs(5))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shutdown(timeout)
    }

    /// The exporters' own logs never become log records (a feedback loop);
    /// the `tracing` bridge asks this before it builds one.
    fn event_enabled(&self, _level: Severity, target: &str, _name: Option<&str>) -> bool {
        !crate::feedback::is_exporter_target(target)
    }
}

/// Drives an SDK [`SpanExporter`] from the batch worker.
#[derive(Debug)]
pub(crate) struct SpanExporterAdapter<E> {
    exporter: E,
    batch: Vec<SpanData>,
}

impl<E: SpanExporter + 'static> BatchExporter<SpanData> for SpanExporterAdapter<E> {
    fn take_batch(&mut self, batch: &mut Vec<SpanData>) {
        std::mem::swap(&mut self.batch, batch);
        // On the worker thread: masking never costs the application.
        self.batch.iter_mut().for_each(crate::redact::mask_span);
    }
    fn export(&mut self) -> ExportFuture<'_> {
        // The SDK's exporter takes the spans: give it a copy, so the batch
        // survives a failed attempt for the retry. (OTLP, the exporter that
        // matters for cost, sends bytes encoded once instead: `otlp_spans`.)
        Box::pin(self.exporter.export(self.batch.clone()))
    }
    fn release_batch(&mut self) {
        self.batch.clear();
    }
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }
}

impl<E: SpanExporter> SpanExporterAdapter<E> {
    pub(crate) fn new(mut exporter: E, resource: &Resource) -> Self {
        exporter.set_resource(resource);
        SpanExporterAdapter {
            exporter,
            batch: Vec::new(),
        }
    }
}

/// Drives an SDK [`LogExporter`] from the batch worker, masking card
/// numbers and IBANs in bodies and attributes first.
#[derive(Debug)]
pub(crate) struct LogExporterAdapter<E> {
    exporter: E,
    batch: Vec<(SdkLogRecord, InstrumentationScope)>,
    /// Makes blank records for masked copies (the SDK's records cannot
    /// rewrite an attribute in place). Its provider has no processor.
    blank: SdkLogger,
}

impl<E: LogExporter> LogExporterAdapter<E> {
    pub(crate) fn new(mut exporter: E, resource: &Resource) -> Self {
        exporter.set_resource(resource);
        let blank = SdkLoggerProvider::builder()
            .build()
            .logger("telemetry.redact");
        LogExporterAdapter {
            exporter,
            batch: Vec::new(),
            blank,
        }
    }
}

impl<E: LogExporter + 'static> BatchExporter<(SdkLogRecord, InstrumentationScope)>
    for LogExporterAdapter<E>
{
    fn take_batch(&mut self, batch: &mut Vec<(SdkLogRecord, InstrumentationScope)>) {
        std::mem::swap(&mut self.batch, batch);
        // On the worker thread: masking never costs the application.
        for (record, _) in self.batch.iter_mut() {
            if let Some(masked) = crate::redact::masked_log_record(record, &self.blank) {
                *record = masked;
            }
        }
    }
    fn export(&mut self) -> ExportFuture<'_> {
        let exporter = &self.exporter;
        let batch = &self.batch;
        Box::pin(async move {
            let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
                batch.iter().map(|(r, s)| (r, s)).collect();
            exporter.export(LogBatch::new(&refs)).await
        })
    }
    fn release_batch(&mut self) {
        self.batch.clear();
    }
    fn shutdown(&mut self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }
}
