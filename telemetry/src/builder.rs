//! The builder: what the environment does not cover, and the four ways to
//! start — [`init`](TelemetryBuilder::init),
//! [`try_init`](TelemetryBuilder::try_init),
//! [`set_default`](TelemetryBuilder::set_default) and
//! [`build`](TelemetryBuilder::build).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::logs::LogExporter;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::SpanExporter;
use tracing::Dispatch;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{Config, LogFormat, Signal};
use crate::env::{EnvSource, ProcessEnv};
use crate::error::InitError;
use crate::exporters::{self, LogDestination, MetricDestination, SpanDestination};
use crate::guard::{Inner, ScopedTelemetry, Telemetry};
use crate::health::TelemetryHealth;
use crate::layers::{LayerRecipe, SharedWriter, service_traces};
use crate::log_filter::LogFilter;
use crate::metrics::register_self_metrics;
use crate::pipeline;
use crate::resource;

/// The subscriber every layer is stacked on: the registry. `RUST_LOG`
/// filters before any layer sees a span or event: the filter and the layers
/// are one layer (`LogFilter::and_then`), so the registry's per-span close
/// bookkeeping runs once, not once per level.
pub type BaseSubscriber = Registry;
/// A layer added with [`TelemetryBuilder::with_layer`].
pub type BoxedLayer = Box<dyn Layer<BaseSubscriber> + Send + Sync + 'static>;

/// Configures telemetry for what the environment does not cover, then
/// starts it.
///
/// ```
/// use opentelemetry::metrics::MeterProvider as _;
/// let telemetry = telemetry::Telemetry::builder("doc-engine")
///     .with_version("1.4.2")
///     .with_namespace("deltran")
///     .with_resource_attribute("team", "clearing")
///     .with_env([("OTEL_TRACES_EXPORTER", "none"), ("OTEL_METRICS_EXPORTER", "none"),
///                ("OTEL_LOGS_EXPORTER", "none")])
///     .set_default()?;
/// assert_eq!(telemetry.service().version, "1.4.2");
/// tracing::info_span!("work").in_scope(|| tracing::info!("inside"));
/// telemetry.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TelemetryBuilder {
    name: String,
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
    span_exporters: Vec<SpanDestination>,
    log_exporters: Vec<LogDestination>,
    metric_exporters: Vec<MetricDestination>,
}

impl std::fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("namespace", &self.namespace)
            .field("layers", &self.layers.len())
            .field("span_exporters", &self.span_exporters)
            .field("log_exporters", &self.log_exporters)
            .field("metric_exporters", &self.metric_exporters)
            .finish_non_exhaustive()
    }
}

impl TelemetryBuilder {
    pub(crate) fn new(name: String) -> Self {
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
            span_exporters: Vec::new(),
            log_exporters: Vec::new(),
            metric_exporters: Vec::new(),
        }
    }

    /// `service.version`; [`builder!`](crate::builder!) and
    /// [`init!`](crate::init!) fill it from the calling crate.
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

    /// Adds a `tracing` layer to telemetry's subscriber. To put telemetry's
    /// layers into a subscriber of your own instead, see
    /// [`Telemetry::layer`].
    pub fn with_layer(mut self, layer: impl Layer<BaseSubscriber> + Send + Sync + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// Sends spans to `exporter`, through the same bounded batch queue,
    /// masking and retries as the exporters the environment selects.
    ///
    /// Exporters given in code take the place of the default (`otlp`, when
    /// `OTEL_TRACES_EXPORTER` is unset); what an operator sets explicitly
    /// still counts: `none` turns spans off, a list of exporters is used
    /// beside the code's. `OTEL_SDK_DISABLED=true` turns everything off.
    /// Call again to send to several.
    pub fn with_span_exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.span_exporters.push(exporters::span_destination(
            exporters::type_label::<E>(),
            exporter,
        ));
        self
    }

    /// Sends log records to `exporter`; meets `OTEL_LOGS_EXPORTER` as
    /// [`with_span_exporter`](Self::with_span_exporter) meets `OTEL_TRACES_EXPORTER`.
    pub fn with_log_exporter<E: LogExporter + 'static>(mut self, exporter: E) -> Self {
        self.log_exporters.push(exporters::log_destination(
            exporters::type_label::<E>(),
            exporter,
        ));
        self
    }

    /// Pushes metrics to `exporter` every export interval; meets
    /// `OTEL_METRICS_EXPORTER` as [`with_span_exporter`](Self::with_span_exporter)
    /// meets `OTEL_TRACES_EXPORTER`.
    pub fn with_metric_exporter<E: PushMetricExporter>(mut self, exporter: E) -> Self {
        self.metric_exporters.push(exporters::metric_destination(
            exporters::type_label::<E>(),
            exporter,
        ));
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

    /// Starts telemetry and makes it the process-wide default: the
    /// `tracing` subscriber, the text-map propagator and the OpenTelemetry
    /// providers.
    ///
    /// # Panics
    /// When the configuration is invalid or a global subscriber is already
    /// installed, with a message naming what to change. Use
    /// [`try_init`](Self::try_init) to handle it instead.
    #[track_caller]
    pub fn init(self) -> Telemetry {
        let name = self.name.clone();
        match self.try_init() {
            Ok(t) => t,
            Err(e) => panic!("telemetry for {name:?} could not start: {e}"),
        }
    }

    /// [`init`](Self::init), returning why it cannot start instead of
    /// panicking.
    pub fn try_init(self) -> Result<Telemetry, InitError> {
        let telemetry = self.build()?;
        telemetry.install_globally()?;
        Ok(telemetry)
    }

    /// Starts telemetry as the default subscriber of the current thread
    /// only, until the returned guard is dropped; nothing process-wide
    /// changes (no global subscriber, propagator or provider). For tests.
    pub fn set_default(self) -> Result<ScopedTelemetry, InitError> {
        Ok(ScopedTelemetry::new(self.build()?))
    }

    /// Starts telemetry without installing anything: use
    /// [`Telemetry::dispatch`] with `tracing::dispatcher::with_default`, or
    /// [`Telemetry::layer`] in a subscriber of your own.
    pub fn build(self) -> Result<Telemetry, InitError> {
        let (config, filter) = Config::load(&*self.env)?;
        let identity = resource::identity(
            Some(&self.name),
            self.version.as_deref(),
            self.namespace.as_deref(),
            self.environment.as_deref(),
            &config,
        );
        let shutdown_timeout = self.shutdown_timeout.unwrap_or(config.shutdown_timeout);
        let format = config
            .log_format
            .unwrap_or(if is_dev(&identity.environment) {
                LogFormat::Text
            } else {
                LogFormat::Json
            });
        let writer = SharedWriter(Arc::new(
            self.stdout
                .unwrap_or_else(|| BoxMakeWriter::new(std::io::stdout)),
        ));
        let metric_deadline = Arc::new(Mutex::new(None));

        // `none` for every signal (or the SDK disabled) means no runtime,
        // no thread, no socket, whatever code handed in.
        let any_exporter = !(config.traces_exporters.is_empty()
            && config.metrics_exporters.is_empty()
            && config.logs_exporters.is_empty());
        let mut runtime = None;
        let mut traces = None;
        let mut logs = None;
        let mut metrics = pipeline::metrics::MetricsPipeline::default();
        let mut prometheus_stop = None;
        let mut prometheus = None;
        if !config.sdk_disabled && any_exporter {
            let resource = resource::build(&identity, &config, &*self.env, &self.attributes);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otel-runtime")
                .enable_all()
                .build()?;
            {
                // The OTLP exporters' clients are made inside the runtime
                // they will run on.
                let _enter = rt.enter();
                let handle = rt.handle();
                let spans = choose(Signal::Traces, &config, self.span_exporters, || {
                    exporters::spans_from(&config, &writer)
                })?;
                let log_records = choose(Signal::Logs, &config, self.log_exporters, || {
                    exporters::logs_from(&config, &writer)
                })?;
                let metric_exporters =
                    choose(Signal::Metrics, &config, self.metric_exporters, || {
                        exporters::metrics_from(&config)
                    })?;
                metrics = pipeline::metrics::build(
                    &config,
                    &resource,
                    metric_exporters,
                    self.boundaries,
                    handle,
                    &metric_deadline,
                )?;
                traces = pipeline::traces::build(&config, &resource, spans, handle)?;
                logs = pipeline::logs::build(&config, &resource, log_records, handle)?;
            }
            if let Some(endpoint) = metrics.prometheus.take() {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                rt.spawn(crate::prometheus::serve(
                    endpoint.listener,
                    endpoint.handle.clone(),
                    stop_rx,
                ));
                prometheus_stop = Some(stop_tx);
                prometheus = Some((endpoint.handle, endpoint.addr));
            }
            runtime = Some(rt);
        }
        let (tracer_provider, span_stats, span_queues) = match traces {
            Some(t) => (Some(t.provider), Some(t.stats), t.queues),
            None => (None, None, Vec::new()),
        };
        let (logger_provider, log_stats) = logs.unzip();
        let pipelines: Vec<_> = span_stats
            .unwrap_or_default()
            .into_iter()
            .chain(log_stats.unwrap_or_default())
            .chain(std::mem::take(&mut metrics.stats))
            .collect();
        if let Some(provider) = &metrics.provider {
            let meter = provider.meter_with_scope(
                InstrumentationScope::builder("telemetry")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
            );
            register_self_metrics(&meter, &pipelines);
        }

        let recipe = LayerRecipe {
            writer,
            format,
            traces: tracer_provider
                .as_ref()
                .map(|provider| service_traces(provider, &identity, span_queues, config.limits)),
            sampler: config.sampler,
            logger_provider: logger_provider.clone(),
            pass_through: !config.propagators.is_empty(),
            code_location: self.code_location,
        };
        let filtered = LogFilter::new(filter).and_then(recipe.layers::<BaseSubscriber>());
        // The service's own layers, if any, after telemetry's (an empty list
        // would answer "never" for every callsite).
        let dispatch = if self.layers.is_empty() {
            Dispatch::new(tracing_subscriber::registry().with(filtered))
        } else {
            Dispatch::new(tracing_subscriber::registry().with(filtered.and_then(self.layers)))
        };
        for stats in &pipelines {
            // Export warnings are emitted on exporter threads, which have no
            // default subscriber unless one is installed globally.
            stats.log_to(&dispatch);
        }
        warn_unenforced_limits(&config, &dispatch);
        warn_logs_go_nowhere(&config, format, &dispatch);
        if let Some(from_env) = &config.service_name
            && *from_env != identity.name
        {
            tracing::dispatcher::with_default(&dispatch, || {
                tracing::warn!(
                    target: "telemetry::config",
                    variable = "OTEL_SERVICE_NAME",
                    ignored = %from_env,
                    service = %identity.name,
                    "OTEL_SERVICE_NAME is not used: the service names itself in code"
                )
            });
        }

        let (prometheus_handle, prometheus_addr) = prometheus.unzip();
        Ok(Telemetry {
            inner: Arc::new(Inner {
                identity,
                dispatch,
                layers: recipe,
                log_filter: config.log_filter.clone(),
                tracer_provider,
                logger_provider,
                meter_provider: metrics.provider,
                runtime: Mutex::new(runtime),
                prometheus: prometheus_handle,
                prometheus_addr: prometheus_addr.flatten(),
                prometheus_stop: Mutex::new(prometheus_stop),
                health: TelemetryHealth { pipelines },
                propagator: Arc::new(crate::propagation::propagator_for(&config.propagators)),
                propagators: config.propagators,
                shutdown_timeout,
                metric_deadline,
                metrics_push: metrics.push,
                shutdown: OnceLock::new(),
            }),
        })
    }
}

/// One signal's exporters: the code's replace the default, never an
/// operator's explicit choice (`none` turns the signal off; a list is
/// used beside the code's).
fn choose<D>(
    signal: Signal,
    config: &Config,
    from_code: Vec<D>,
    from_env: impl FnOnce() -> Result<Vec<D>, InitError>,
) -> Result<Vec<D>, InitError> {
    let turned_off = match signal {
        Signal::Traces => config.traces_exporters.is_empty(),
        Signal::Metrics => config.metrics_exporters.is_empty(),
        Signal::Logs => config.logs_exporters.is_empty(),
    };
    if turned_off {
        return Ok(Vec::new());
    }
    if from_code.is_empty() {
        return from_env();
    }
    if !config.explicit_exporters.contains(&signal) {
        return Ok(from_code);
    }
    let mut chosen = from_env()?;
    chosen.extend(from_code);
    Ok(chosen)
}

/// Variables the SDK cannot honour are said once, at start, rather than
/// silently ignored.
fn warn_unenforced_limits(config: &Config, dispatch: &Dispatch) {
    if config.log_limits_requested {
        tracing::dispatcher::with_default(dispatch, || {
            tracing::warn!(
                target: "telemetry::config",
                variables = "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT, OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                "log-record attribute limits are not enforced: the OpenTelemetry 0.33 SDK cannot trim log attributes"
            )
        });
    }
}

/// `TELEMETRY_LOG_FORMAT=none` leaves the service's logs to OTLP: without a
/// logs exporter they go nowhere, which is said once, at start.
fn warn_logs_go_nowhere(config: &Config, format: LogFormat, dispatch: &Dispatch) {
    // A disabled SDK is silent: nothing is exported then, by choice.
    if format == LogFormat::None && config.logs_exporters.is_empty() && !config.sdk_disabled {
        tracing::dispatcher::with_default(dispatch, || {
            tracing::warn!(
                target: "telemetry::config",
                variable = "TELEMETRY_LOG_FORMAT",
                "TELEMETRY_LOG_FORMAT=none and no logs exporter: the service's log events are written nowhere (set OTEL_LOGS_EXPORTER=otlp, or another format)"
            )
        });
    }
}

fn is_dev(environment: &str) -> bool {
    matches!(
        environment.to_ascii_lowercase().as_str(),
        "dev" | "development" | "local" | "test"
    )
}
