//! The public configuration: what the environment decided, after parsing.

use std::fmt;
use std::time::Duration;

use super::limits::{BatchConfig, LimitsConfig};
use super::log::LogFormat;
use super::otlp::OtlpConfig;
use super::views::ViewConfig;

/// The three signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric data points.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// Lower-case name, as in `OTEL_{SIGNAL}_EXPORTER` and `/v1/{signal}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// Upper-case name, as in the `OTEL_EXPORTER_OTLP_{SIGNAL}_*` variables.
    pub(crate) fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where spans go (`OTEL_TRACES_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpanExporterKind {
    /// OTLP to a collector.
    Otlp,
    /// The SDK's debug rendering on stdout.
    Console,
}

/// Where log records go (`OTEL_LOGS_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogExporterKind {
    /// OTLP to a collector.
    Otlp,
    /// The SDK's debug rendering on stdout.
    Console,
}

/// Where metrics go (`OTEL_METRICS_EXPORTER`). Only metrics have a pull
/// endpoint, so only this kind can say `Prometheus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricExporterKind {
    /// OTLP to a collector.
    Otlp,
    /// The SDK's debug rendering on stdout.
    Console,
    /// A Prometheus pull endpoint.
    Prometheus,
}

/// Trace sampler (`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum SamplerConfig {
    /// Record every trace.
    AlwaysOn,
    /// Record nothing.
    AlwaysOff,
    /// Keep this share of traces by trace id.
    TraceIdRatio(f64),
    /// Follow the parent's decision; roots always on.
    ParentBasedAlwaysOn,
    /// Follow the parent's decision; roots always off.
    ParentBasedAlwaysOff,
    /// Follow the parent's decision; roots by trace-id ratio.
    ParentBasedTraceIdRatio(f64),
}

/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`: what the OTLP
/// metric exporter asks for (Prometheus is always cumulative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemporalityPreference {
    /// Every instrument cumulative (the default).
    #[default]
    Cumulative,
    /// Counters, asynchronous counters and histograms as deltas; up-down
    /// counters stay cumulative.
    Delta,
    /// Synchronous counters and histograms as deltas; asynchronous
    /// instruments and up-down counters cumulative: the least memory.
    LowMemory,
}

/// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistogramAggregation {
    /// Explicit buckets (the instrument's, or the seconds buckets for `s`).
    #[default]
    ExplicitBucket,
    /// Base-2 exponential buckets: 160 per sign, scale up to 20, min and max.
    Base2Exponential,
}

/// Context propagators (`OTEL_PROPAGATORS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PropagatorKind {
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// Zipkin B3, one `b3` header.
    B3,
    /// Zipkin B3, the `X-B3-*` headers.
    B3Multi,
    /// Jaeger `uber-trace-id` and `uberctx-*`.
    Jaeger,
}

/// Everything the environment can say, parsed and validated.
///
/// Built only by [`Config::from_env`] (or `Default`, the empty environment),
/// so new variables can be added without breaking callers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// `OTEL_SDK_DISABLED`: no exporters, no threads, no sockets.
    pub sdk_disabled: bool,
    /// `OTEL_SERVICE_NAME`, used when code gives no name.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, in order.
    pub resource_attributes: Vec<(String, String)>,
    /// `OTEL_PROPAGATORS`; empty means `none`.
    pub propagators: Vec<PropagatorKind>,
    /// `OTEL_TRACES_EXPORTER`; empty means `none`.
    pub traces_exporters: Vec<SpanExporterKind>,
    /// `OTEL_METRICS_EXPORTER`; empty means `none`.
    pub metrics_exporters: Vec<MetricExporterKind>,
    /// `OTEL_LOGS_EXPORTER`; empty means `none`.
    pub logs_exporters: Vec<LogExporterKind>,
    /// `OTEL_TRACES_SAMPLER` / `_ARG`.
    pub sampler: SamplerConfig,
    /// OTLP settings for spans.
    pub otlp_traces: OtlpConfig,
    /// OTLP settings for metrics.
    pub otlp_metrics: OtlpConfig,
    /// OTLP settings for logs.
    pub otlp_logs: OtlpConfig,
    /// `OTEL_BSP_*`.
    pub span_batch: BatchConfig,
    /// `OTEL_BLRP_*`.
    pub log_batch: BatchConfig,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub metric_export_interval: Duration,
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
    pub metrics_temporality: TemporalityPreference,
    /// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`.
    pub histogram_aggregation: HistogramAggregation,
    /// `OTEL_METRIC_EXPORT_TIMEOUT`.
    pub metric_export_timeout: Duration,
    /// Attribute limits.
    pub limits: LimitsConfig,
    /// `OTEL_EXPORTER_PROMETHEUS_HOST`.
    pub prometheus_host: String,
    /// `OTEL_EXPORTER_PROMETHEUS_PORT`.
    pub prometheus_port: u16,
    /// `TELEMETRY_SHUTDOWN_TIMEOUT` (ms): the guard's flush deadline.
    pub shutdown_timeout: Duration,
    /// `TELEMETRY_LOG_FORMAT` (`json`, `text`, `none`); `None` = by
    /// environment name.
    pub log_format: Option<LogFormat>,
    /// `RUST_LOG`: directives for stdout and exported logs and spans.
    pub log_filter: String,
    /// `OTEL_CONFIG_FILE`: the declarative configuration file everything
    /// above came from, when one was given.
    pub config_file: Option<String>,
    /// The file's `resource.attributes`, typed; applied after
    /// [`Config::resource_attributes`].
    pub typed_resource_attributes: Vec<opentelemetry::KeyValue>,
    /// The file's `meter_provider.views`, first match wins.
    pub views: Vec<ViewConfig>,
    /// Signals whose exporters were chosen explicitly (`OTEL_*_EXPORTER`
    /// set, or a configuration file): code-given exporters join them
    /// instead of replacing the default.
    pub(crate) explicit_exporters: Vec<Signal>,
    /// Whether log-record attribute limits were asked for (the SDK cannot
    /// enforce them; telemetry says so at start).
    pub(crate) log_limits_requested: bool,
}

impl Config {
    /// The OTLP settings of one signal.
    pub fn otlp(&self, signal: Signal) -> &OtlpConfig {
        match signal {
            Signal::Traces => &self.otlp_traces,
            Signal::Metrics => &self.otlp_metrics,
            Signal::Logs => &self.otlp_logs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_match_the_variables_and_paths() {
        for (s, lower, upper) in [
            (Signal::Traces, "traces", "TRACES"),
            (Signal::Metrics, "metrics", "METRICS"),
            (Signal::Logs, "logs", "LOGS"),
        ] {
            assert_eq!(s.as_str(), lower);
            assert_eq!(s.to_string(), lower);
            assert_eq!(s.upper(), upper);
        }
    }

    #[test]
    fn accessors_pick_the_signal() {
        let c = Config::from_env(&[
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_LOGS_EXPORTER", "console"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
        ])
        .unwrap();
        assert_eq!(c.traces_exporters, [SpanExporterKind::Otlp]);
        assert_eq!(c.metrics_exporters, [MetricExporterKind::Prometheus]);
        assert_eq!(c.logs_exporters, [LogExporterKind::Console]);
        assert_eq!(c.otlp(Signal::Traces).endpoint, "http://traces:4317");
        assert_eq!(c.otlp(Signal::Metrics).endpoint, "http://localhost:4317");
    }
}
