//! Configuration from the standard `OTEL_*` environment.
//!
//! Every variable of the OpenTelemetry SDK environment specification that
//! applies to traces, metrics and logs is parsed here, including those the
//! Rust SDK never reads itself. Parsing collects *all* problems so one start-up
//! reports every bad variable at once, each naming the variable, the value and
//! what is accepted.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::env::EnvSource;

/// One invalid environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable that holds the bad value.
    pub variable: String,
    /// The value as found.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} is invalid: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every invalid variable found in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid telemetry configuration: ")?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The three signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    fn upper(self) -> &'static str {
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

/// Where a signal goes (`OTEL_{TRACES,METRICS,LOGS}_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterKind {
    /// OTLP to a collector.
    Otlp,
    /// Human-readable lines on stdout.
    Console,
    /// Prometheus pull endpoint (metrics only).
    Prometheus,
}

/// OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC through tonic.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
}

/// OTLP payload compression (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// Trace sampler (`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
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

/// Context propagators (`OTEL_PROPAGATORS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagatorKind {
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
}

/// OTLP settings for one signal after the spec's fallbacks are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// Full URL: for HTTP it includes `/v1/{signal}`.
    pub endpoint: String,
    /// Transport.
    pub protocol: Protocol,
    /// Extra request headers (authentication, tenant ids).
    pub headers: Vec<(String, String)>,
    /// Payload compression, if any.
    pub compression: Option<Compression>,
    /// Per-export deadline.
    pub timeout: Duration,
    /// PEM file with the CA certificate(s) to trust for the collector.
    pub certificate: Option<PathBuf>,
    /// PEM file with the client private key for mTLS.
    pub client_key: Option<PathBuf>,
    /// PEM file with the client certificate chain for mTLS.
    pub client_certificate: Option<PathBuf>,
}

/// Batch processor settings (`OTEL_BSP_*` for spans, `OTEL_BLRP_*` for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Items held while waiting for export; more are dropped and counted.
    pub max_queue_size: usize,
    /// How long to wait before exporting a partial batch.
    pub schedule_delay: Duration,
    /// Deadline of one export call.
    pub export_timeout: Duration,
    /// Most items per export call.
    pub max_export_batch_size: usize,
}

/// Attribute limits (`OTEL_ATTRIBUTE_*`, `OTEL_SPAN_*`, `OTEL_LOGRECORD_*`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Longest string attribute value on spans, events and links; `None` = unlimited.
    pub span_attribute_value_length: Option<usize>,
    /// Most attributes per span.
    pub span_attribute_count: u32,
    /// Most events per span.
    pub span_event_count: u32,
    /// Most links per span.
    pub span_link_count: u32,
    /// Most attributes per span event.
    pub event_attribute_count: u32,
    /// Most attributes per span link.
    pub link_attribute_count: u32,
    /// Longest string attribute value on log records; `None` = unlimited.
    pub log_attribute_value_length: Option<usize>,
    /// Most attributes per log record.
    pub log_attribute_count: usize,
}

/// Stdout log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, with `trace_id` and `span_id`.
    Json,
    /// Readable text, for development.
    Text,
}

/// Everything the environment can say, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
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
    pub traces_exporters: Vec<ExporterKind>,
    /// `OTEL_METRICS_EXPORTER`; empty means `none`.
    pub metrics_exporters: Vec<ExporterKind>,
    /// `OTEL_LOGS_EXPORTER`; empty means `none`.
    pub logs_exporters: Vec<ExporterKind>,
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
    /// `TELEMETRY_LOG_FORMAT` (`json`, `text`); `None` = by environment name.
    pub log_format: Option<LogFormat>,
    /// `RUST_LOG`: directives for stdout and exported logs and spans.
    pub log_filter: String,
}

impl Config {
    /// Parses and validates the environment.
    ///
    /// ```
    /// use telemetry::{Config, ExporterKind};
    ///
    /// let cfg = Config::from_env(&[("OTEL_METRICS_EXPORTER", "otlp,prometheus")]).unwrap();
    /// assert_eq!(cfg.metrics_exporters, vec![ExporterKind::Otlp, ExporterKind::Prometheus]);
    ///
    /// let err = Config::from_env(&[("OTEL_TRACES_SAMPLER", "sometimes")]).unwrap_err();
    /// assert!(err.to_string().contains("OTEL_TRACES_SAMPLER=\"sometimes\""));
    /// ```
    pub fn from_env(env: &(impl EnvSource + ?Sized)) -> Result<Config, ConfigErrors> {
        let mut p = Parser {
            env,
            errors: Vec::new(),
        };
        let cfg = p.config();
        if p.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(p.errors))
        }
    }

    /// The OTLP settings of one signal.
    pub fn otlp(&self, signal: Signal) -> &OtlpConfig {
        match signal {
            Signal::Traces => &self.otlp_traces,
            Signal::Metrics => &self.otlp_metrics,
            Signal::Logs => &self.otlp_logs,
        }
    }

    /// The exporters chosen for one signal.
    pub fn exporters(&self, signal: Signal) -> &[ExporterKind] {
        match signal {
            Signal::Traces => &self.traces_exporters,
            Signal::Metrics => &self.metrics_exporters,
            Signal::Logs => &self.logs_exporters,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let empty: [(&str, &str); 0] = [];
        let mut p = Parser {
            env: &empty,
            errors: Vec::new(),
        };
        p.config()
    }
}

struct Parser<'a, E: EnvSource + ?Sized> {
    env: &'a E,
    errors: Vec<ConfigError>,
}

impl<E: EnvSource + ?Sized> Parser<'_, E> {
    fn fail(&mut self, variable: &str, value: &str, expected: impl Into<String>) {
        self.errors.push(ConfigError {
            variable: variable.to_string(),
            value: value.to_string(),
            expected: expected.into(),
        });
    }

    fn config(&mut self) -> Config {
        let otlp_generic = self.otlp_generic();
        Config {
            sdk_disabled: self.boolean("OTEL_SDK_DISABLED", false),
            service_name: self
                .env
                .var("OTEL_SERVICE_NAME")
                .map(|s| s.trim().to_string()),
            resource_attributes: self.resource_attributes(),
            propagators: self.propagators(),
            traces_exporters: self.exporters(Signal::Traces),
            metrics_exporters: self.exporters(Signal::Metrics),
            logs_exporters: self.exporters(Signal::Logs),
            sampler: self.sampler(),
            otlp_traces: self.otlp_signal(Signal::Traces, &otlp_generic),
            otlp_metrics: self.otlp_signal(Signal::Metrics, &otlp_generic),
            otlp_logs: self.otlp_signal(Signal::Logs, &otlp_generic),
            span_batch: self.batch("OTEL_BSP", 5000),
            log_batch: self.batch("OTEL_BLRP", 1000),
            metric_export_interval: self.millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000, false),
            metric_export_timeout: self.millis("OTEL_METRIC_EXPORT_TIMEOUT", 30_000, false),
            limits: self.limits(),
            prometheus_host: self
                .env
                .var("OTEL_EXPORTER_PROMETHEUS_HOST")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|| "localhost".to_string()),
            prometheus_port: self.port("OTEL_EXPORTER_PROMETHEUS_PORT", 9464),
            shutdown_timeout: self.millis("TELEMETRY_SHUTDOWN_TIMEOUT", 5_000, false),
            log_format: self.log_format(),
            log_filter: self.log_filter(),
        }
    }

    fn boolean(&mut self, var: &str, default: bool) -> bool {
        match self.env.var(var) {
            None => default,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    self.fail(var, &v, "true or false");
                    default
                }
            },
        }
    }

    fn unsigned(&mut self, var: &str, default: u64, allow_zero: bool) -> u64 {
        match self.env.var(var) {
            None => default,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(0) if !allow_zero => {
                    self.fail(var, &v, "a positive integer");
                    default
                }
                Ok(n) => n,
                Err(_) => {
                    let what = if allow_zero {
                        "a non-negative integer"
                    } else {
                        "a positive integer"
                    };
                    self.fail(var, &v, what);
                    default
                }
            },
        }
    }

    fn millis(&mut self, var: &str, default_ms: u64, allow_zero: bool) -> Duration {
        match self.env.var(var) {
            None => Duration::from_millis(default_ms),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(0) if !allow_zero => {
                    self.fail(var, &v, "a positive number of milliseconds");
                    Duration::from_millis(default_ms)
                }
                Ok(n) => Duration::from_millis(n),
                Err(_) => {
                    self.fail(var, &v, "a whole number of milliseconds, e.g. 5000");
                    Duration::from_millis(default_ms)
                }
            },
        }
    }

    fn port(&mut self, var: &str, default: u16) -> u16 {
        match self.env.var(var) {
            None => default,
            Some(v) => match v.trim().parse::<u16>() {
                Ok(p) => p,
                Err(_) => {
                    self.fail(var, &v, "a TCP port number 0-65535");
                    default
                }
            },
        }
    }

    fn resource_attributes(&mut self) -> Vec<(String, String)> {
        const VAR: &str = "OTEL_RESOURCE_ATTRIBUTES";
        let Some(raw) = self.env.var(VAR) else {
            return Vec::new();
        };
        match parse_key_values(&raw) {
            Ok(kvs) => kvs,
            Err(bad) => {
                self.fail(
                    VAR,
                    &raw,
                    format!(
                        "comma-separated key=value pairs with percent-encoded values (bad entry: {bad:?})"
                    ),
                );
                Vec::new()
            }
        }
    }

    fn propagators(&mut self) -> Vec<PropagatorKind> {
        const VAR: &str = "OTEL_PROPAGATORS";
        let Some(raw) = self.env.var(VAR) else {
            return vec![PropagatorKind::TraceContext, PropagatorKind::Baggage];
        };
        let mut out = Vec::new();
        let mut none = false;
        for item in list(&raw) {
            match item.as_str() {
                "tracecontext" => push_unique(&mut out, PropagatorKind::TraceContext),
                "baggage" => push_unique(&mut out, PropagatorKind::Baggage),
                "none" => none = true,
                "b3" | "b3multi" | "jaeger" | "xray" | "ottrace" => self.fail(
                    VAR,
                    &raw,
                    format!(
                        "tracecontext, baggage or none ({item} is a valid OpenTelemetry name but not built into this crate)"
                    ),
                ),
                _ => self.fail(VAR, &raw, "a comma-separated list of tracecontext, baggage, none"),
            }
        }
        // `none` anywhere wins, as the specification says.
        if none { Vec::new() } else { out }
    }

    fn exporters(&mut self, signal: Signal) -> Vec<ExporterKind> {
        let var = format!("OTEL_{}_EXPORTER", signal.upper());
        let Some(raw) = self.env.var(&var) else {
            return vec![ExporterKind::Otlp];
        };
        let accepted = if signal == Signal::Metrics {
            "a comma-separated list of otlp, prometheus, console, none"
        } else {
            "a comma-separated list of otlp, console, none"
        };
        let mut out = Vec::new();
        let mut none = false;
        for item in list(&raw) {
            match item.as_str() {
                "otlp" => push_unique(&mut out, ExporterKind::Otlp),
                "console" | "logging" => push_unique(&mut out, ExporterKind::Console),
                "prometheus" if signal == Signal::Metrics => {
                    push_unique(&mut out, ExporterKind::Prometheus)
                }
                "none" => none = true,
                _ => self.fail(&var, &raw, accepted),
            }
        }
        if none && !out.is_empty() {
            self.fail(
                &var,
                &raw,
                "either none alone or a list of exporters, not both",
            );
        }
        if none { Vec::new() } else { out }
    }

    fn sampler(&mut self) -> SamplerConfig {
        const VAR: &str = "OTEL_TRACES_SAMPLER";
        const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
        let ratio = |p: &mut Self| -> f64 {
            match p.env.var(ARG) {
                None => 1.0,
                Some(v) => match v.trim().parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => r,
                    _ => {
                        p.fail(ARG, &v, "a sampling probability between 0 and 1, e.g. 0.25");
                        1.0
                    }
                },
            }
        };
        let Some(raw) = self.env.var(VAR) else {
            return SamplerConfig::ParentBasedAlwaysOn;
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "always_on" => SamplerConfig::AlwaysOn,
            "always_off" => SamplerConfig::AlwaysOff,
            "traceidratio" => SamplerConfig::TraceIdRatio(ratio(self)),
            "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
            "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(ratio(self)),
            _ => {
                self.fail(
                    VAR,
                    &raw,
                    "one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio",
                );
                SamplerConfig::ParentBasedAlwaysOn
            }
        }
    }

    fn protocol(&mut self, var: &str) -> Option<Protocol> {
        let raw = self.env.var(var)?;
        match raw.trim() {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" => Some(Protocol::HttpProtobuf),
            "http/json" => {
                self.fail(
                    var,
                    &raw,
                    "grpc or http/protobuf (http/json is not built into this crate)",
                );
                None
            }
            _ => {
                self.fail(var, &raw, "grpc or http/protobuf");
                None
            }
        }
    }

    fn compression(&mut self, var: &str) -> Option<Option<Compression>> {
        let raw = self.env.var(var)?;
        match raw.trim() {
            "gzip" => Some(Some(Compression::Gzip)),
            "zstd" => Some(Some(Compression::Zstd)),
            "none" => Some(None),
            _ => {
                self.fail(var, &raw, "gzip, zstd or none");
                None
            }
        }
    }

    fn endpoint(&mut self, var: &str) -> Option<String> {
        let raw = self.env.var(var)?;
        let trimmed = raw.trim();
        match trimmed.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http") | Some("https"))
                    && uri.authority().is_some() =>
            {
                Some(trimmed.to_string())
            }
            _ => {
                self.fail(
                    var,
                    &raw,
                    "an absolute http:// or https:// URL, e.g. http://localhost:4317",
                );
                None
            }
        }
    }

    fn headers(&mut self, var: &str) -> Option<Vec<(String, String)>> {
        let raw = self.env.var(var)?;
        match parse_key_values(&raw) {
            Ok(kvs) => {
                for (k, v) in &kvs {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                        || http::HeaderValue::from_str(v).is_err()
                    {
                        self.fail(
                            var,
                            &raw,
                            format!("valid HTTP header names and values (bad header: {k:?})"),
                        );
                        return None;
                    }
                }
                Some(kvs)
            }
            Err(bad) => {
                self.fail(
                    var,
                    &raw,
                    format!("comma-separated name=value pairs, values percent-encoded (bad entry: {bad:?})"),
                );
                None
            }
        }
    }

    fn file(&mut self, var: &str) -> Option<PathBuf> {
        let raw = self.env.var(var)?;
        let path = PathBuf::from(raw.trim());
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Some(path),
            _ => {
                self.fail(var, &raw, "the path of a readable PEM file");
                None
            }
        }
    }

    fn otlp_generic(&mut self) -> OtlpGeneric {
        OtlpGeneric {
            endpoint: self.endpoint("OTEL_EXPORTER_OTLP_ENDPOINT"),
            protocol: self.protocol("OTEL_EXPORTER_OTLP_PROTOCOL"),
            headers: self.headers("OTEL_EXPORTER_OTLP_HEADERS"),
            compression: self.compression("OTEL_EXPORTER_OTLP_COMPRESSION"),
            timeout: self
                .env
                .var("OTEL_EXPORTER_OTLP_TIMEOUT")
                .map(|_| self.millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, false)),
            certificate: self.file("OTEL_EXPORTER_OTLP_CERTIFICATE"),
            client_key: self.file("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
            client_certificate: self.file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        }
    }

    fn otlp_signal(&mut self, signal: Signal, g: &OtlpGeneric) -> OtlpConfig {
        let s = signal.upper();
        let var = |suffix: &str| format!("OTEL_EXPORTER_OTLP_{s}_{suffix}");
        let protocol = self
            .protocol(&var("PROTOCOL"))
            .or(g.protocol)
            .unwrap_or(Protocol::Grpc);
        let endpoint = match self.endpoint(&var("ENDPOINT")) {
            Some(e) => e,
            None => match (&g.endpoint, protocol) {
                (Some(base), Protocol::Grpc) => base.clone(),
                (Some(base), Protocol::HttpProtobuf) => {
                    format!("{}/v1/{}", base.trim_end_matches('/'), signal.as_str())
                }
                (None, Protocol::Grpc) => "http://localhost:4317".to_string(),
                (None, Protocol::HttpProtobuf) => {
                    format!("http://localhost:4318/v1/{}", signal.as_str())
                }
            },
        };
        let headers = self
            .headers(&var("HEADERS"))
            .or_else(|| g.headers.clone())
            .unwrap_or_default();
        let compression = self
            .compression(&var("COMPRESSION"))
            .or(g.compression)
            .unwrap_or(None);
        let timeout = if self.env.var(&var("TIMEOUT")).is_some() {
            self.millis(&var("TIMEOUT"), 10_000, false)
        } else {
            g.timeout.unwrap_or(Duration::from_secs(10))
        };
        let certificate = self
            .file(&var("CERTIFICATE"))
            .or_else(|| g.certificate.clone());
        let client_key = self
            .file(&var("CLIENT_KEY"))
            .or_else(|| g.client_key.clone());
        let client_certificate = self
            .file(&var("CLIENT_CERTIFICATE"))
            .or_else(|| g.client_certificate.clone());
        if client_key.is_some() != client_certificate.is_some() {
            let (missing, present) = if client_key.is_some() {
                (var("CLIENT_CERTIFICATE"), var("CLIENT_KEY"))
            } else {
                (var("CLIENT_KEY"), var("CLIENT_CERTIFICATE"))
            };
            self.fail(
                &missing,
                "",
                format!("a PEM file too, because {present} (or its generic form) is set: mTLS needs both"),
            );
        }
        OtlpConfig {
            endpoint,
            protocol,
            headers,
            compression,
            timeout,
            certificate,
            client_key,
            client_certificate,
        }
    }

    fn batch(&mut self, prefix: &str, default_delay_ms: u64) -> BatchConfig {
        let max_queue_size =
            self.unsigned(&format!("{prefix}_MAX_QUEUE_SIZE"), 2048, false) as usize;
        let mut max_export_batch_size =
            self.unsigned(&format!("{prefix}_MAX_EXPORT_BATCH_SIZE"), 512, false) as usize;
        if max_export_batch_size > max_queue_size {
            let var = format!("{prefix}_MAX_EXPORT_BATCH_SIZE");
            let raw = self
                .env
                .var(&var)
                .unwrap_or_else(|| max_export_batch_size.to_string());
            self.fail(
                &var,
                &raw,
                format!("a batch size no larger than {prefix}_MAX_QUEUE_SIZE ({max_queue_size})"),
            );
            max_export_batch_size = max_queue_size;
        }
        BatchConfig {
            max_queue_size,
            schedule_delay: self.millis(
                &format!("{prefix}_SCHEDULE_DELAY"),
                default_delay_ms,
                false,
            ),
            export_timeout: self.millis(&format!("{prefix}_EXPORT_TIMEOUT"), 30_000, false),
            max_export_batch_size,
        }
    }

    fn limits(&mut self) -> LimitsConfig {
        let generic_len = self.optional_len("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT");
        let generic_count = self.unsigned("OTEL_ATTRIBUTE_COUNT_LIMIT", 128, true);
        let count = |p: &mut Self, var: &str, default: u64| -> u32 {
            let n = p.unsigned(var, default, true);
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        LimitsConfig {
            span_attribute_value_length: self
                .optional_len("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
                .or(generic_len),
            span_attribute_count: count(self, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", generic_count),
            span_event_count: count(self, "OTEL_SPAN_EVENT_COUNT_LIMIT", 128),
            span_link_count: count(self, "OTEL_SPAN_LINK_COUNT_LIMIT", 128),
            event_attribute_count: count(self, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", generic_count),
            link_attribute_count: count(self, "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", generic_count),
            log_attribute_value_length: self
                .optional_len("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT")
                .or(generic_len),
            log_attribute_count: self.unsigned(
                "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
                generic_count,
                true,
            ) as usize,
        }
    }

    fn optional_len(&mut self, var: &str) -> Option<usize> {
        self.env
            .var(var)
            .map(|_| self.unsigned(var, u64::MAX, true) as usize)
    }

    fn log_filter(&mut self) -> String {
        let Some(raw) = self.env.var("RUST_LOG") else {
            return "info".to_string();
        };
        match tracing_subscriber::EnvFilter::builder().parse(&raw) {
            Ok(_) => raw,
            Err(e) => {
                self.fail(
                    "RUST_LOG",
                    &raw,
                    format!(
                        "tracing-subscriber filter directives, e.g. info,token_engine=debug ({e})"
                    ),
                );
                "info".to_string()
            }
        }
    }

    fn log_format(&mut self) -> Option<LogFormat> {
        const VAR: &str = "TELEMETRY_LOG_FORMAT";
        let raw = self.env.var(VAR)?;
        match raw.trim().to_ascii_lowercase().as_str() {
            "json" => Some(LogFormat::Json),
            "text" => Some(LogFormat::Text),
            _ => {
                self.fail(VAR, &raw, "json or text");
                None
            }
        }
    }
}

struct OtlpGeneric {
    endpoint: Option<String>,
    protocol: Option<Protocol>,
    headers: Option<Vec<(String, String)>>,
    compression: Option<Option<Compression>>,
    timeout: Option<Duration>,
    certificate: Option<PathBuf>,
    client_key: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

/// Parses `k1=v1,k2=v2` with percent-decoded values (W3C baggage style, as
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS` use).
/// Returns the offending entry on error.
pub(crate) fn parse_key_values(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in raw.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some((k, v)) = entry.split_once('=') else {
            return Err(entry.to_string());
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(entry.to_string());
        }
        let v = percent_decode(v.trim()).ok_or_else(|| entry.to_string())?;
        out.push((k.to_string(), v));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(env: &[(&str, &str)]) -> Vec<ConfigError> {
        match Config::from_env(env) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn defaults_follow_the_specification() {
        let c = Config::from_env(&[]).unwrap();
        assert!(!c.sdk_disabled);
        assert_eq!(
            c.propagators,
            vec![PropagatorKind::TraceContext, PropagatorKind::Baggage]
        );
        assert_eq!(c.traces_exporters, vec![ExporterKind::Otlp]);
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(c.otlp_traces.endpoint, "http://localhost:4317");
        assert_eq!(c.otlp_traces.timeout, Duration::from_secs(10));
        assert_eq!(c.span_batch.max_queue_size, 2048);
        assert_eq!(c.span_batch.schedule_delay, Duration::from_millis(5000));
        assert_eq!(c.log_batch.schedule_delay, Duration::from_millis(1000));
        assert_eq!(c.metric_export_interval, Duration::from_secs(60));
        assert_eq!(c.limits.span_attribute_count, 128);
        assert_eq!(c.prometheus_port, 9464);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(c, Config::default());
    }

    #[test]
    fn http_endpoint_gets_signal_path_and_per_signal_endpoint_is_used_as_is() {
        let c = Config::from_env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "https://logs.example:443/custom",
            ),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
        ])
        .unwrap();
        assert_eq!(c.otlp_traces.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(c.otlp_traces.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.otlp_logs.endpoint, "https://logs.example:443/custom");
        assert_eq!(c.otlp_metrics.protocol, Protocol::Grpc);
        assert_eq!(c.otlp_metrics.endpoint, "http://collector:4318/");
    }

    #[test]
    fn headers_and_resource_attributes_are_percent_decoded() {
        let c = Config::from_env(&[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20abc, x-tenant=t1",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-only=traces"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=prod,team=pay%2Cments",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.otlp_metrics.headers,
            vec![
                ("authorization".into(), "Bearer abc".into()),
                ("x-tenant".into(), "t1".into())
            ]
        );
        assert_eq!(
            c.otlp_traces.headers,
            vec![("x-only".into(), "traces".into())]
        );
        assert_eq!(
            c.resource_attributes[1],
            ("team".into(), "pay,ments".into())
        );
    }

    #[test]
    fn every_enum_variable_rejects_unknown_values_naming_variable_and_choices() {
        let cases = [
            ("OTEL_SDK_DISABLED", "yes", "true or false"),
            (
                "OTEL_PROPAGATORS",
                "tracecontext,foo",
                "tracecontext, baggage, none",
            ),
            ("OTEL_PROPAGATORS", "b3", "not built into this crate"),
            ("OTEL_TRACES_EXPORTER", "zipkin", "otlp, console, none"),
            ("OTEL_TRACES_EXPORTER", "prometheus", "otlp, console, none"),
            (
                "OTEL_METRICS_EXPORTER",
                "statsd",
                "otlp, prometheus, console, none",
            ),
            ("OTEL_LOGS_EXPORTER", "file", "otlp, console, none"),
            (
                "OTEL_TRACES_SAMPLER",
                "sometimes",
                "parentbased_traceidratio",
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "udp",
                "grpc or http/protobuf",
            ),
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/json",
                "grpc or http/protobuf",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "thrift",
                "grpc or http/protobuf",
            ),
            (
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "brotli",
                "gzip, zstd or none",
            ),
            (
                "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
                "lz4",
                "gzip, zstd or none",
            ),
            ("TELEMETRY_LOG_FORMAT", "xml", "json or text"),
            ("OTEL_METRICS_EXPORTER", "otlp,none", "none alone"),
            ("RUST_LOG", "info,[", "filter directives"),
        ];
        for (var, value, expected) in cases {
            let errs = errors(&[(var, value)]);
            assert_eq!(errs.len(), 1, "{var}={value}: {errs:?}");
            assert_eq!(errs[0].variable, var);
            assert_eq!(errs[0].value, value);
            assert!(
                errs[0].expected.contains(expected),
                "{var}: {:?} should mention {expected:?}",
                errs[0].expected
            );
        }
    }

    #[test]
    fn every_number_variable_rejects_garbage_and_zero_where_zero_makes_no_sense() {
        let positive = [
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_BSP_EXPORT_TIMEOUT",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "OTEL_BLRP_MAX_QUEUE_SIZE",
            "OTEL_BLRP_SCHEDULE_DELAY",
            "OTEL_BLRP_EXPORT_TIMEOUT",
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_METRIC_EXPORT_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
            "TELEMETRY_SHUTDOWN_TIMEOUT",
        ];
        let non_negative = [
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "OTEL_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_SPAN_EVENT_COUNT_LIMIT",
            "OTEL_SPAN_LINK_COUNT_LIMIT",
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
        ];
        for var in positive.iter().chain(non_negative.iter()) {
            for bad in ["abc", "-1", "1.5"] {
                let errs = errors(&[(var, bad)]);
                assert_eq!(errs[0].variable, *var, "{var}={bad}");
                assert_eq!(errs[0].value, bad);
            }
        }
        for var in positive {
            let errs = errors(&[(var, "0")]);
            assert_eq!(errs[0].variable, var);
            assert!(errs[0].expected.contains("positive"), "{var}");
        }
        for var in non_negative {
            assert!(
                Config::from_env(&[(var, "0")]).is_ok(),
                "{var}=0 is a valid limit"
            );
        }
        for (var, bad) in [
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "http"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ] {
            let env = [("OTEL_TRACES_SAMPLER", "traceidratio"), (var, bad)];
            let errs = errors(&env);
            assert_eq!(errs[0].variable, var);
        }
    }

    #[test]
    fn malformed_urls_headers_and_files_are_reported() {
        let errs = errors(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
            ("OTEL_RESOURCE_ATTRIBUTES", "a=%zz"),
        ]);
        let vars: Vec<_> = errs.iter().map(|e| e.variable.as_str()).collect();
        for v in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "OTEL_RESOURCE_ATTRIBUTES",
        ] {
            assert!(vars.contains(&v), "{v} missing from {vars:?}");
        }
    }

    #[test]
    fn mtls_needs_key_and_certificate_together() {
        let dir = std::env::temp_dir();
        let key = dir.join(format!("telemetry-test-key-{}.pem", std::process::id()));
        std::fs::write(&key, "x").unwrap();
        let key_s = key.to_string_lossy().to_string();
        let errs = errors(&[("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key_s)]);
        assert!(
            errs.iter()
                .any(|e| e.variable == "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE")
        );
        let _ = std::fs::remove_file(key);
    }

    #[test]
    fn none_disables_and_lists_combine() {
        let c = Config::from_env(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "otlp, console"),
            ("OTEL_PROPAGATORS", "none"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        assert!(c.traces_exporters.is_empty());
        assert_eq!(
            c.logs_exporters,
            vec![ExporterKind::Otlp, ExporterKind::Console]
        );
        assert!(c.propagators.is_empty());
        assert_eq!(c.sampler, SamplerConfig::ParentBasedTraceIdRatio(0.25));
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let errs = errors(&[
            ("OTEL_TRACES_SAMPLER", "x"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "y"),
            ("OTEL_LOGS_EXPORTER", "z"),
        ]);
        assert_eq!(errs.len(), 3);
        let msg = ConfigErrors(errs).to_string();
        assert!(msg.contains("OTEL_TRACES_SAMPLER=\"x\""), "{msg}");
        assert!(msg.contains("OTEL_BSP_MAX_QUEUE_SIZE=\"y\""), "{msg}");
    }
}
