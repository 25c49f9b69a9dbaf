//! The builder and the guard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Dispatch;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::batch::BatchQueue;
use crate::config::{Config, ExporterKind, LogFormat, SamplerConfig, Signal};
use crate::env::{EnvSource, ProcessEnv};
use crate::error::InitError;
use crate::health::{PipelineStats, TelemetryHealth};
use crate::metrics::{CountingMetricExporter, histogram_view, register_self_metrics};
use crate::metrics_push::{MetricsPush, SharedReader};
use crate::processors::{
    LogExporterAdapter, QueueLogProcessor, QueueSpanProcessor, SpanExporterAdapter,
};
use crate::prometheus::PrometheusHandle;
use crate::resource::{self, ServiceIdentity};
use crate::shutdown::{ShutdownError, ShutdownSlot, WaitShutdown, run_bounded};
use crate::stdout::{JsonLayer, NoFeedback};

/// The subscriber every layer is stacked on: the registry filtered by `RUST_LOG`.
pub type BaseSubscriber = Layered<EnvFilter, Registry>;
/// A layer added with [`TelemetryBuilder::with_layer`].
pub type BoxedLayer = Box<dyn Layer<BaseSubscriber> + Send + Sync + 'static>;

/// Configures telemetry for what the environment does not cover.
///
/// ```
/// use opentelemetry::metrics::MeterProvider as _;
/// let telemetry = telemetry::Telemetry::builder("doc-engine")
///     .with_version("1.4.2")
///     .with_namespace("deltran")
///     .with_resource_attribute("team", "clearing")
///     .with_env([("OTEL_TRACES_EXPORTER", "none"), ("OTEL_METRICS_EXPORTER", "none"),
///                ("OTEL_LOGS_EXPORTER", "none")])
///     .build()
///     .unwrap();
/// assert_eq!(telemetry.service().version, "1.4.2");
/// tracing::dispatcher::with_default(telemetry.dispatch(), || {
///     tracing::info_span!("work").in_scope(|| tracing::info!("inside"));
/// });
/// telemetry.shutdown().unwrap();
/// ```
pub struct TelemetryBuilder {
    name: Option<String>,
    version: Option<String>,
    namespace: Option<String>,
    environment: Option<String>,
    attributes: Vec<KeyValue>,
    env: Box<dyn EnvSource + Send>,
    layers: Vec<BoxedLayer>,
    boundaries: HashMap<String, Vec<f64>>,
    shutdown_timeout: Option<Duration>,
    code_location: bool,
    stdout: Option<BoxMakeWriter>,
    #[cfg(feature = "testing")]
    in_memory: Option<crate::testing::InMemory>,
}

impl std::fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("namespace", &self.namespace)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl TelemetryBuilder {
    pub(crate) fn new(name: Option<String>) -> Self {
        TelemetryBuilder {
            name,
            version: None,
            namespace: None,
            environment: None,
            attributes: Vec::new(),
            env: Box::new(ProcessEnv),
            layers: Vec::new(),
            boundaries: HashMap::new(),
            shutdown_timeout: None,
            code_location: false,
            stdout: None,
            #[cfg(feature = "testing")]
            in_memory: None,
        }
    }

    /// `service.version`; [`init!`](crate::init!) fills it from the calling crate.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// `service.namespace` (e.g. `deltran`).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// `deployment.environment.name`; `dev` selects readable stdout text.
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// An extra resource attribute; wins over `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn with_resource_attribute(
        mut self,
        key: impl Into<opentelemetry::Key>,
        value: impl Into<opentelemetry::Value>,
    ) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    /// Reads configuration from `env` instead of the process environment.
    pub fn with_env(mut self, env: impl EnvSource + Send + 'static) -> Self {
        self.env = Box::new(env);
        self
    }

    /// Adds a `tracing` layer to the subscriber.
    pub fn with_layer(mut self, layer: impl Layer<BaseSubscriber> + Send + Sync + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Bucket boundaries for one histogram, by instrument name. Histograms
    /// with unit `s` otherwise get [`SECONDS_BUCKETS`](crate::SECONDS_BUCKETS).
    pub fn with_histogram_boundaries(
        mut self,
        instrument: impl Into<String>,
        boundaries: &[f64],
    ) -> Self {
        self.boundaries
            .insert(instrument.into(), boundaries.to_vec());
        self
    }

    /// The guard's flush deadline (default 5 s, or `TELEMETRY_SHUTDOWN_TIMEOUT`).
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// Record `code.*` location attributes on spans (off by default: it
    /// roughly doubles the cost of a span).
    pub fn with_span_code_location(mut self, enabled: bool) -> Self {
        self.code_location = enabled;
        self
    }

    /// Where stdout logs go (tests capture them here).
    pub fn with_stdout_writer<W>(mut self, writer: W) -> Self
    where
        W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
    {
        self.stdout = Some(BoxMakeWriter::new(writer));
        self
    }

    /// Sends all three signals to in-memory exporters instead of OTLP,
    /// through the same batch pipelines.
    #[cfg(feature = "testing")]
    pub fn with_in_memory(mut self, sink: &crate::testing::InMemory) -> Self {
        self.in_memory = Some(sink.clone());
        self
    }

    /// Builds everything without installing anything globally. Use
    /// [`Telemetry::dispatch`] with `tracing::dispatcher::with_default`, or
    /// [`Telemetry::install`].
    pub fn build(self) -> Result<Telemetry, InitError> {
        let (config, filter) = Config::load(&*self.env)?;
        let identity = resource::identity(
            self.name.as_deref(),
            self.version.as_deref(),
            self.namespace.as_deref(),
            self.environment.as_deref(),
            &config,
        );
        let shutdown_timeout = self.shutdown_timeout.unwrap_or(config.shutdown_timeout);
        let propagator = crate::propagation::propagator_for(&config.propagators);
        let stdout_writer = self
            .stdout
            .unwrap_or_else(|| BoxMakeWriter::new(std::io::stdout));
        let format = config
            .log_format
            .unwrap_or(if is_dev(&identity.environment) {
                LogFormat::Text
            } else {
                LogFormat::Json
            });
        let stdout_layer: BoxedLayer = match format {
            LogFormat::Json => Box::new(JsonLayer::new(stdout_writer)),
            LogFormat::Text => Box::new(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(crate::redact::MaskingFields)
                    .with_writer(stdout_writer)
                    .with_ansi(false),
            ),
        };
        let mut layers: Vec<BoxedLayer> = vec![stdout_layer];

        let mut parts = Parts::default();
        let any_exporter = !(config.traces_exporters.is_empty()
            && config.metrics_exporters.is_empty()
            && config.logs_exporters.is_empty());
        if !config.sdk_disabled && any_exporter {
            let resource = resource::build(&identity, &config, &*self.env, &self.attributes);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otel-runtime")
                .enable_all()
                .build()?;
            {
                let _enter = runtime.enter();
                #[cfg(feature = "testing")]
                let in_memory = self.in_memory.as_ref();
                #[cfg(not(feature = "testing"))]
                let in_memory: Option<&()> = None;
                parts = build_pipelines(
                    &config,
                    &identity,
                    resource,
                    runtime.handle(),
                    self.boundaries,
                    in_memory,
                )?;
            }
            if let Some(provider) = &parts.tracer_provider {
                let scope = InstrumentationScope::builder(identity.name.clone())
                    .with_version(identity.version.clone())
                    .build();
                let tracer = provider.tracer_with_scope(scope);
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_location(self.code_location)
                    .with_threads(false)
                    .with_tracked_inactivity(false)
                    .with_filter(NoFeedback);
                layers.push(Box::new(layer));
            }
            if let Some(provider) = &parts.logger_provider {
                let bridge =
                    opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(
                        provider,
                    )
                    .with_filter(NoFeedback);
                layers.push(Box::new(bridge));
            }
            if let Some((listener, handle)) = parts.prometheus_listener.take() {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                runtime.spawn(crate::prometheus::serve(listener, handle, stop_rx));
                parts.prometheus_stop = Some(stop_tx);
            }
            parts.runtime = Some(runtime);
        }
        if parts.tracer_provider.is_none() && !config.propagators.is_empty() {
            // No traces are recorded (`OTEL_TRACES_EXPORTER=none` or
            // `OTEL_SDK_DISABLED=true`), but "no exporter" must not cut the
            // traces passing through this service: without an OpenTelemetry
            // layer, `span.set_parent` and `span.context()` do nothing, so no
            // incoming context would reach outgoing calls. The no-op tracer
            // gives every span its parent's context (what the OpenTelemetry
            // API does without an SDK): the incoming `traceparent`,
            // `tracestate` and baggage go out unchanged. This service's own
            // span ids are not used, because those spans are never exported
            // and would leave the next service pointing at a parent no
            // backend has. No thread, socket or id generator is involved.
            let pass_through = tracing_opentelemetry::layer()
                .with_tracer(opentelemetry::trace::noop::NoopTracer::new())
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_filter(NoFeedback);
            layers.push(Box::new(pass_through));
        }
        layers.extend(self.layers);
        let subscriber = tracing_subscriber::registry().with(filter).with(layers);
        let dispatch = Dispatch::new(subscriber);
        for stats in &parts.pipelines {
            // Export warnings are emitted on exporter threads, which have no
            // default subscriber unless one is installed globally.
            stats.log_to(&dispatch);
        }
        for var in [
            "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
            "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        ] {
            if self.env.var(var).is_some() {
                tracing::dispatcher::with_default(&dispatch, || {
                    tracing::warn!(
                        target: "telemetry::config",
                        variable = var,
                        "log-record attribute limits are not enforced: the OpenTelemetry 0.33 SDK cannot trim log attributes"
                    )
                });
            }
        }
        let meter_provider = parts
            .meter_provider
            .clone()
            .unwrap_or_else(|| SdkMeterProvider::builder().build());
        Ok(Telemetry {
            inner: Arc::new(Inner {
                identity,
                dispatch,
                tracer_provider: parts.tracer_provider,
                logger_provider: parts.logger_provider,
                meter_provider,
                has_metric_readers: parts.meter_provider.is_some(),
                runtime: Mutex::new(parts.runtime),
                prometheus: parts.prometheus,
                prometheus_addr: parts.prometheus_addr,
                prometheus_stop: Mutex::new(parts.prometheus_stop),
                health: TelemetryHealth {
                    pipelines: parts.pipelines,
                },
                propagator: Arc::new(propagator),
                shutdown_timeout,
                metric_deadline: parts.metric_deadline,
                metrics_push: parts.metrics_push,
                shutdown: OnceLock::new(),
            }),
        })
    }

    /// Builds and installs globally: the `tracing` subscriber, the
    /// propagator and the OpenTelemetry tracer and meter providers.
    pub fn install(self) -> Result<Telemetry, InitError> {
        let telemetry = self.build()?;
        telemetry.install()?;
        Ok(telemetry)
    }
}

fn is_dev(environment: &str) -> bool {
    matches!(
        environment.to_ascii_lowercase().as_str(),
        "dev" | "development" | "local" | "test"
    )
}

#[derive(Default)]
struct Parts {
    tracer_provider: Option<SdkTracerProvider>,
    logger_provider: Option<SdkLoggerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    pipelines: Vec<Arc<PipelineStats>>,
    prometheus: Option<PrometheusHandle>,
    prometheus_addr: Option<std::net::SocketAddr>,
    prometheus_listener: Option<(std::net::TcpListener, PrometheusHandle)>,
    prometheus_stop: Option<tokio::sync::watch::Sender<bool>>,
    runtime: Option<tokio::runtime::Runtime>,
    metric_deadline: Arc<Mutex<Option<Instant>>>,
    metrics_push: Option<MetricsPush>,
}

trait InMemorySink {
    #[cfg(feature = "testing")]
    fn sink(&self) -> &crate::testing::InMemory;
}
#[cfg(feature = "testing")]
impl InMemorySink for crate::testing::InMemory {
    fn sink(&self) -> &crate::testing::InMemory {
        self
    }
}
impl InMemorySink for () {
    #[cfg(feature = "testing")]
    fn sink(&self) -> &crate::testing::InMemory {
        unreachable_in_memory()
    }
}
#[cfg(feature = "testing")]
fn unreachable_in_memory() -> &'static crate::testing::InMemory {
    static EMPTY: OnceLock<crate::testing::InMemory> = OnceLock::new();
    EMPTY.get_or_init(crate::testing::InMemory::new)
}

fn build_pipelines<M: InMemorySink>(
    config: &Config,
    identity: &ServiceIdentity,
    resource: opentelemetry_sdk::Resource,
    runtime: &tokio::runtime::Handle,
    boundaries: HashMap<String, Vec<f64>>,
    in_memory: Option<&M>,
) -> Result<Parts, InitError> {
    let mut parts = Parts::default();
    let _ = identity;

    // Metrics first: instruments created before the meter provider exists
    // would be silent no-ops.
    let mut meter_builder = SdkMeterProvider::builder()
        .with_resource(resource.clone())
        .with_view(histogram_view(boundaries));
    let mut any_reader = false;
    let mut metric_stats = Vec::new();
    // Everything fallible comes before the first periodic reader exists: a
    // reader dropped before its provider is built keeps its thread forever.
    let mut otlp_metric_exporter = None;
    if config.metrics_exporters.contains(&ExporterKind::Otlp) && in_memory.is_none() {
        otlp_metric_exporter = Some(crate::otlp::metric_exporter(&config.otlp_metrics)?);
    }
    let mut prometheus = None;
    if config.metrics_exporters.contains(&ExporterKind::Prometheus) {
        let (reader, handle) = crate::prometheus::reader()?;
        let listener = crate::prometheus::bind(&config.prometheus_host, config.prometheus_port)?;
        prometheus = Some((reader, handle, listener));
    }
    let mut push_exporter = None;
    let mut shared_prometheus: Option<SharedReader> = None;
    for kind in &config.metrics_exporters {
        match kind {
            ExporterKind::Otlp => {
                let stats = PipelineStats::new(Signal::Metrics, 0);
                let endpoint = config.otlp_metrics.endpoint.clone();
                #[cfg(feature = "testing")]
                if let Some(mem) = in_memory {
                    let reader = PeriodicReader::builder(CountingMetricExporter {
                        inner: mem.sink().metric_exporter(),
                        stats: Arc::clone(&stats),
                        runtime: runtime.clone(),
                        timeout: config.metric_export_timeout,
                        endpoint: "in-memory".into(),
                        deadline: Arc::clone(&parts.metric_deadline),
                    })
                    .with_interval(config.metric_export_interval)
                    .build();
                    meter_builder = meter_builder.with_reader(reader);
                    metric_stats.push(stats);
                    any_reader = true;
                    continue;
                }
                let Some(exporter) = otlp_metric_exporter.take() else {
                    continue;
                };
                if prometheus.is_some() || shared_prometheus.is_some() {
                    // One reader feeds both paths: see `metrics_push`.
                    push_exporter = Some(CountingMetricExporter {
                        inner: exporter,
                        stats: Arc::clone(&stats),
                        runtime: runtime.clone(),
                        timeout: config.metric_export_timeout,
                        endpoint,
                        deadline: Arc::clone(&parts.metric_deadline),
                    });
                    metric_stats.push(stats);
                    any_reader = true;
                    continue;
                }
                let reader = PeriodicReader::builder(CountingMetricExporter {
                    inner: exporter,
                    stats: Arc::clone(&stats),
                    runtime: runtime.clone(),
                    timeout: config.metric_export_timeout,
                    endpoint,
                    deadline: Arc::clone(&parts.metric_deadline),
                })
                .with_interval(config.metric_export_interval)
                .build();
                meter_builder = meter_builder.with_reader(reader);
                metric_stats.push(stats);
                any_reader = true;
            }
            ExporterKind::Console => {
                let stats = PipelineStats::new(Signal::Metrics, 0);
                let reader = PeriodicReader::builder(CountingMetricExporter {
                    inner: opentelemetry_stdout::MetricExporter::default(),
                    stats: Arc::clone(&stats),
                    runtime: runtime.clone(),
                    timeout: config.metric_export_timeout,
                    endpoint: "stdout".into(),
                    deadline: Arc::clone(&parts.metric_deadline),
                })
                .with_interval(config.metric_export_interval)
                .build();
                meter_builder = meter_builder.with_reader(reader);
                metric_stats.push(stats);
                any_reader = true;
            }
            ExporterKind::Prometheus => {
                let Some((reader, handle, listener)) = prometheus.take() else {
                    continue;
                };
                parts.prometheus_addr = listener.local_addr().ok();
                parts.prometheus_listener = Some((listener, handle.clone()));
                parts.prometheus = Some(handle);
                if otlp_metric_exporter.is_some() || push_exporter.is_some() {
                    let shared = SharedReader(Arc::new(reader));
                    meter_builder = meter_builder.with_reader(shared.clone());
                    shared_prometheus = Some(shared);
                } else {
                    meter_builder = meter_builder.with_reader(reader);
                }
                any_reader = true;
            }
        }
    }
    let _ = in_memory;
    // Built now, so an error below drops the provider, which shuts the
    // readers (and their threads) down; nothing is recorded yet, so that
    // exports nothing.
    let meter_provider = any_reader.then(|| meter_builder.build());
    if let (Some(exporter), Some(reader)) = (push_exporter, shared_prometheus) {
        parts.metrics_push = Some(MetricsPush::start(
            reader,
            exporter,
            config.metric_export_interval,
        )?);
    }

    // Traces.
    let mut span_stats = Vec::new();
    if !config.traces_exporters.is_empty() {
        let mut b = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(sampler(config.sampler))
            .with_max_attributes_per_span(config.limits.span_attribute_count)
            .with_max_events_per_span(config.limits.span_event_count)
            .with_max_links_per_span(config.limits.span_link_count)
            .with_max_attributes_per_event(config.limits.event_attribute_count)
            .with_max_attributes_per_link(config.limits.link_attribute_count);
        for (i, kind) in config.traces_exporters.iter().enumerate() {
            let stats = PipelineStats::new(Signal::Traces, config.span_batch.max_queue_size);
            let name = format!("traces-{i}");
            let queue = match kind {
                #[cfg(feature = "testing")]
                ExporterKind::Otlp if in_memory.is_some() => {
                    let exporter = in_memory
                        .map(|m| m.sink().span_exporter())
                        .unwrap_or_default();
                    BatchQueue::start(
                        &name,
                        SpanExporterAdapter::new(exporter, &resource),
                        config.span_batch,
                        runtime.clone(),
                        Arc::clone(&stats),
                        "in-memory".into(),
                    )?
                }
                ExporterKind::Otlp => {
                    let exporter = crate::otlp::span_exporter(&config.otlp_traces)?;
                    BatchQueue::start(
                        &name,
                        SpanExporterAdapter::new(exporter, &resource),
                        config.span_batch,
                        runtime.clone(),
                        Arc::clone(&stats),
                        config.otlp_traces.endpoint.clone(),
                    )?
                }
                ExporterKind::Console | ExporterKind::Prometheus => {
                    let exporter = opentelemetry_stdout::SpanExporter::default();
                    BatchQueue::start(
                        &name,
                        SpanExporterAdapter::new(exporter, &resource),
                        config.span_batch,
                        runtime.clone(),
                        Arc::clone(&stats),
                        "stdout".into(),
                    )?
                }
            };
            b = b.with_span_processor(QueueSpanProcessor {
                queue,
                max_value_len: config.limits.span_attribute_value_length,
            });
            span_stats.push(stats);
        }
        parts.tracer_provider = Some(b.build());
    }

    // Logs.
    let mut log_stats = Vec::new();
    if !config.logs_exporters.is_empty() {
        let mut b = SdkLoggerProvider::builder().with_resource(resource.clone());
        for (i, kind) in config.logs_exporters.iter().enumerate() {
            let stats = PipelineStats::new(Signal::Logs, config.log_batch.max_queue_size);
            let name = format!("logs-{i}");
            let queue = match kind {
                #[cfg(feature = "testing")]
                ExporterKind::Otlp if in_memory.is_some() => {
                    let exporter = in_memory
                        .map(|m| m.sink().log_exporter())
                        .unwrap_or_default();
                    BatchQueue::start(
                        &name,
                        LogExporterAdapter::new(exporter, &resource),
                        config.log_batch,
                        runtime.clone(),
                        Arc::clone(&stats),
                        "in-memory".into(),
                    )?
                }
                ExporterKind::Otlp => {
                    let exporter = crate::otlp::log_exporter(&config.otlp_logs)?;
                    BatchQueue::start(
                        &name,
                        LogExporterAdapter::new(exporter, &resource),
                        config.log_batch,
                        runtime.clone(),
                        Arc::clone(&stats),
                        config.otlp_logs.endpoint.clone(),
                    )?
                }
                ExporterKind::Console | ExporterKind::Prometheus => {
                    let exporter = opentelemetry_stdout::LogExporter::default();
                    BatchQueue::start(
                        &name,
                        LogExporterAdapter::new(exporter, &resource),
                        config.log_batch,
                        runtime.clone(),
                        Arc::clone(&stats),
                        "stdout".into(),
                    )?
                }
            };
            b = b.with_log_processor(QueueLogProcessor { queue });
            log_stats.push(stats);
        }
        parts.logger_provider = Some(b.build());
    }

    parts.pipelines = span_stats
        .into_iter()
        .chain(log_stats)
        .chain(metric_stats)
        .collect();
    if let Some(provider) = meter_provider {
        let meter = provider.meter_with_scope(
            InstrumentationScope::builder("telemetry")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        register_self_metrics(&meter, &parts.pipelines);
        parts.meter_provider = Some(provider);
    }
    Ok(parts)
}

fn sampler(s: SamplerConfig) -> Sampler {
    match s {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

struct Inner {
    identity: ServiceIdentity,
    dispatch: Dispatch,
    tracer_provider: Option<SdkTracerProvider>,
    logger_provider: Option<SdkLoggerProvider>,
    meter_provider: SdkMeterProvider,
    has_metric_readers: bool,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    prometheus: Option<PrometheusHandle>,
    prometheus_addr: Option<std::net::SocketAddr>,
    prometheus_stop: Mutex<Option<tokio::sync::watch::Sender<bool>>>,
    health: TelemetryHealth,
    propagator: Arc<TextMapCompositePropagator>,
    shutdown_timeout: Duration,
    metric_deadline: Arc<Mutex<Option<Instant>>>,
    metrics_push: Option<MetricsPush>,
    shutdown: OnceLock<(Arc<ShutdownSlot>, Instant)>,
}

/// Telemetry for one service, and the guard that flushes it.
///
/// Dropping it flushes and shuts down every provider within the deadline
/// (5 s by default), so keep it alive for the life of `main`:
/// `let _guard = telemetry::init("token-engine");` — never `let _ = ...`,
/// which drops it at once.
#[must_use = "telemetry shuts down when this guard is dropped; bind it with `let _guard = ...`"]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("service", &self.inner.identity)
            .field("health", &self.inner.health)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// A builder for a service named `name`.
    pub fn builder(name: impl Into<String>) -> TelemetryBuilder {
        TelemetryBuilder::new(Some(name.into()))
    }

    /// A builder that takes the service name from `OTEL_SERVICE_NAME`.
    pub fn builder_from_env() -> TelemetryBuilder {
        TelemetryBuilder::new(None)
    }

    /// Installs this telemetry as the process-wide default: the `tracing`
    /// subscriber, the text-map propagator and the OpenTelemetry providers.
    pub fn install(&self) -> Result<(), InitError> {
        tracing::dispatcher::set_global_default(self.inner.dispatch.clone())
            .map_err(|_| InitError::AlreadyInitialized)?;
        opentelemetry::global::set_text_map_propagator(crate::propagation::propagator_for(
            &propagator_kinds(&self.inner.propagator),
        ));
        if let Some(tp) = &self.inner.tracer_provider {
            opentelemetry::global::set_tracer_provider(tp.clone());
        }
        opentelemetry::global::set_meter_provider(self.inner.meter_provider.clone());
        Ok(())
    }

    /// The `tracing` dispatcher carrying all layers; use with
    /// `tracing::dispatcher::with_default` in tests.
    pub fn dispatch(&self) -> &Dispatch {
        &self.inner.dispatch
    }

    /// Who this service is (name, version, namespace, instance, environment).
    pub fn service(&self) -> &ServiceIdentity {
        &self.inner.identity
    }

    /// A meter scoped to this service. Without metric exporters it is a
    /// no-op meter (instruments cost almost nothing).
    pub fn meter(&self) -> Meter {
        self.inner.meter_provider.meter_with_scope(
            InstrumentationScope::builder(self.inner.identity.name.clone())
                .with_version(self.inner.identity.version.clone())
                .build(),
        )
    }

    /// The meter provider, for libraries that want their own scope.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.inner.meter_provider
    }

    /// The tracer provider, if traces are exported.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.inner.tracer_provider.as_ref()
    }

    /// The propagator `OTEL_PROPAGATORS` selected.
    pub fn propagator(&self) -> &TextMapCompositePropagator {
        &self.inner.propagator
    }

    /// Export health for readiness endpoints.
    pub fn health(&self) -> TelemetryHealth {
        self.inner.health.clone()
    }

    /// The Prometheus renderer, when `OTEL_METRICS_EXPORTER` includes `prometheus`.
    pub fn prometheus(&self) -> Option<PrometheusHandle> {
        self.inner.prometheus.clone()
    }

    /// Where the Prometheus pull endpoint listens (useful with port 0).
    pub fn prometheus_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.prometheus_addr
    }

    /// Exports everything queued so far (spans, logs, metrics).
    pub fn force_flush(&self) {
        if let Some(tp) = &self.inner.tracer_provider {
            let _ = tp.force_flush();
        }
        if let Some(lp) = &self.inner.logger_provider {
            let _ = lp.force_flush();
        }
        if let Some(push) = &self.inner.metrics_push {
            push.flush(Duration::from_secs(5));
        }
        if self.inner.has_metric_readers {
            let _ = self.inner.meter_provider.force_flush();
        }
    }

    /// Flushes and shuts down every provider, returning within the deadline
    /// whatever the collector does. Safe on any thread, inside or outside a
    /// runtime of either flavour. Calling it again returns the first result.
    pub fn shutdown(&self) -> Result<(), ShutdownError> {
        let (slot, deadline) = self.start_shutdown();
        // A little grace past the deadline for the shutdown thread to report.
        slot.wait_until(
            deadline + Duration::from_millis(100),
            self.inner.shutdown_timeout,
        )
    }

    /// Like [`shutdown`](Self::shutdown) but awaits instead of blocking the
    /// calling thread, so it is kind to async runtimes.
    pub async fn shutdown_async(&self) -> Result<(), ShutdownError> {
        let (slot, _) = self.start_shutdown();
        WaitShutdown { slot }.await
    }

    fn start_shutdown(&self) -> (Arc<ShutdownSlot>, Instant) {
        let (slot, deadline) = self.inner.shutdown.get_or_init(|| {
            let slot = Arc::new(ShutdownSlot::default());
            let deadline = Instant::now() + self.inner.shutdown_timeout;
            let nothing_to_stop = self.inner.tracer_provider.is_none()
                && self.inner.logger_provider.is_none()
                && !self.inner.has_metric_readers
                && self
                    .inner
                    .runtime
                    .lock()
                    .map(|r| r.is_none())
                    .unwrap_or(true);
            if nothing_to_stop {
                // OTEL_SDK_DISABLED or every exporter `none`: no thread needed.
                slot.complete(Ok(()));
                return (slot, deadline);
            }
            // Every step of `shutdown_all` is bounded by the deadline, so this
            // thread always reports by then; waiters never need a timer.
            let inner = Arc::clone(&self.inner);
            let worker_slot = Arc::clone(&slot);
            let spawned = std::thread::Builder::new()
                .name("otel-shutdown".into())
                .spawn(move || worker_slot.complete(shutdown_all(&inner, deadline)));
            if spawned.is_err() {
                slot.complete(Err(ShutdownError::Failed(vec![(
                    Signal::Traces,
                    "cannot spawn the shutdown thread".into(),
                )])));
            }
            (slot, deadline)
        });
        (Arc::clone(slot), *deadline)
    }
}

fn propagator_kinds(p: &TextMapCompositePropagator) -> Vec<crate::config::PropagatorKind> {
    use opentelemetry::propagation::TextMapPropagator;
    let fields: Vec<String> = p.fields().map(str::to_string).collect();
    let mut kinds = Vec::new();
    if fields.iter().any(|f| f == "traceparent") {
        kinds.push(crate::config::PropagatorKind::TraceContext);
    }
    if fields.iter().any(|f| f == "baggage") {
        kinds.push(crate::config::PropagatorKind::Baggage);
    }
    kinds
}

/// The ordered flush: traces, then logs, then metrics (last, so the final
/// export carries the final self-metrics), each bounded by what is left of
/// the deadline. The runtime is stopped only when everything finished.
fn shutdown_all(inner: &Arc<Inner>, deadline: Instant) -> Result<(), ShutdownError> {
    let mut failures = Vec::new();
    let mut timed_out = false;
    let remaining = || deadline.saturating_duration_since(Instant::now());

    if let Some(tp) = inner.tracer_provider.clone() {
        let budget = remaining();
        match run_bounded("traces", deadline, move || tp.shutdown_with_timeout(budget)) {
            Some(Ok(())) => {}
            Some(Err(e)) => failures.push((Signal::Traces, e.to_string())),
            None => timed_out = true,
        }
    }
    if let Some(lp) = inner.logger_provider.clone() {
        let budget = remaining();
        match run_bounded("logs", deadline, move || lp.shutdown_with_timeout(budget)) {
            Some(Ok(())) => {}
            Some(Err(e)) => failures.push((Signal::Logs, e.to_string())),
            None => timed_out = true,
        }
    }
    if inner.has_metric_readers {
        if let Ok(mut d) = inner.metric_deadline.lock() {
            *d = Some(deadline);
        }
        if let Some(push) = &inner.metrics_push
            && !push.shutdown(deadline)
        {
            timed_out = true;
        }
        let mp = inner.meter_provider.clone();
        let budget = remaining();
        match run_bounded("metrics", deadline, move || {
            mp.shutdown_with_timeout(budget)
        }) {
            Some(Ok(())) => {}
            Some(Err(e)) => failures.push((Signal::Metrics, e.to_string())),
            None => timed_out = true,
        }
    }
    if let Some(stop) = inner.prometheus_stop.lock().ok().and_then(|mut s| s.take()) {
        let _ = stop.send(true);
    }
    if let Some(rt) = inner.runtime.lock().ok().and_then(|mut r| r.take()) {
        if timed_out {
            // Workers may still be inside an export on this runtime; stopping
            // it would make their timers fail. Let them finish and leak it.
            std::mem::forget(rt);
        } else {
            rt.shutdown_timeout(remaining());
        }
    }
    if timed_out {
        Err(ShutdownError::TimedOut(inner.shutdown_timeout))
    } else if failures.is_empty() {
        Ok(())
    } else {
        Err(ShutdownError::Failed(failures))
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // Only the last handle shuts down; `Inner` is shared with the
        // shutdown thread while it runs.
        if let Err(e) = self.shutdown() {
            // stderr, not tracing: the subscriber may be the thing going away.
            eprintln!("telemetry: {e}");
        }
    }
}
