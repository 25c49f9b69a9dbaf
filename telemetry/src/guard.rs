//! The guard: what a started telemetry owns, how to reach it, and the
//! ordered, bounded flush when it is dropped.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::noop::NoopMeterProvider;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Dispatch;
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{PropagatorKind, Signal};
use crate::error::InitError;
use crate::health::TelemetryHealth;
use crate::layers::LayerRecipe;
use crate::metrics_push::MetricsPush;
use crate::prometheus::PrometheusHandle;
use crate::resource::ServiceIdentity;
use crate::shutdown::{ShutdownError, ShutdownSlot, WaitShutdown, run_bounded};

pub(crate) struct Inner {
    pub(crate) identity: ServiceIdentity,
    pub(crate) dispatch: Dispatch,
    pub(crate) layers: LayerRecipe,
    /// `RUST_LOG` as validated, for each copy of the layers.
    pub(crate) log_filter: String,
    pub(crate) tracer_provider: Option<SdkTracerProvider>,
    pub(crate) logger_provider: Option<SdkLoggerProvider>,
    /// `None` without any metric reader: meters are then the API's no-op
    /// ones, which (unlike an SDK provider with no reader) create
    /// instruments silently.
    pub(crate) meter_provider: Option<SdkMeterProvider>,
    pub(crate) runtime: Mutex<Option<tokio::runtime::Runtime>>,
    pub(crate) prometheus: Option<PrometheusHandle>,
    pub(crate) prometheus_addr: Option<std::net::SocketAddr>,
    pub(crate) prometheus_stop: Mutex<Option<tokio::sync::watch::Sender<bool>>>,
    pub(crate) health: TelemetryHealth,
    pub(crate) propagators: Vec<PropagatorKind>,
    pub(crate) propagator: Arc<TextMapCompositePropagator>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) metric_deadline: Arc<Mutex<Option<Instant>>>,
    pub(crate) metrics_push: Option<MetricsPush>,
    pub(crate) shutdown: OnceLock<(Arc<ShutdownSlot>, Instant)>,
}

/// Telemetry for one service, and the guard that flushes it.
///
/// Dropping it flushes and shuts down every provider within the deadline
/// (5 s by default), so keep it alive for the life of `main`:
/// `let _guard = telemetry::init!("token-engine");` — never `let _ = ...`,
/// which drops it at once.
#[must_use = "telemetry shuts down when this guard is dropped; bind it with `let _guard = ...`"]
pub struct Telemetry {
    pub(crate) inner: Arc<Inner>,
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
    /// A builder for a service named `name`; [`builder!`](crate::builder!)
    /// also records the calling crate's version.
    pub fn builder(name: impl Into<String>) -> crate::TelemetryBuilder {
        crate::TelemetryBuilder::new(name.into())
    }

    /// Makes this telemetry the process-wide default: the `tracing`
    /// subscriber, the text-map propagator and the OpenTelemetry providers.
    pub(crate) fn install_globally(&self) -> Result<(), InitError> {
        tracing::dispatcher::set_global_default(self.inner.dispatch.clone())
            .map_err(|_| InitError::AlreadyInitialized)?;
        opentelemetry::global::set_text_map_propagator(crate::propagation::propagator_for(
            &self.inner.propagators,
        ));
        if let Some(tp) = &self.inner.tracer_provider {
            opentelemetry::global::set_tracer_provider(tp.clone());
        }
        if let Some(mp) = &self.inner.meter_provider {
            opentelemetry::global::set_meter_provider(mp.clone());
        }
        Ok(())
    }

    /// The `tracing` dispatcher carrying all layers; use with
    /// `tracing::dispatcher::with_default` in tests.
    pub fn dispatch(&self) -> &Dispatch {
        &self.inner.dispatch
    }

    /// Telemetry's layers — stdout, spans and logs to OpenTelemetry —
    /// filtered by `RUST_LOG`, for a subscriber the service assembles
    /// itself. Each call makes a fresh copy over the same providers; the
    /// guard must still be kept alive.
    ///
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt as _;
    ///
    /// let telemetry = telemetry::Telemetry::builder("doc-engine")
    ///     .with_env([("OTEL_TRACES_EXPORTER", "none"), ("OTEL_METRICS_EXPORTER", "none"),
    ///                ("OTEL_LOGS_EXPORTER", "none")])
    ///     .build()?;
    /// let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    /// tracing::subscriber::with_default(subscriber, || tracing::info!("through the service's own registry"));
    /// # Ok::<(), telemetry::InitError>(())
    /// ```
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
    {
        self.inner
            .layers
            .layers::<S>()
            .with_filter(crate::log_filter::LogFilter::new(
                crate::config::filter_from(&self.inner.log_filter),
            ))
    }

    /// Who this service is (name, version, namespace, instance, environment).
    pub fn service(&self) -> &ServiceIdentity {
        &self.inner.identity
    }

    /// A meter scoped to this service. Without metric exporters (or with
    /// the SDK disabled) it is the API's no-op meter: instruments cost
    /// almost nothing and nothing is logged about them.
    pub fn meter(&self) -> Meter {
        let scope = InstrumentationScope::builder(self.inner.identity.name.clone())
            .with_version(self.inner.identity.version.clone())
            .build();
        match &self.inner.meter_provider {
            Some(mp) => mp.meter_with_scope(scope),
            None => NoopMeterProvider::new().meter_with_scope(scope),
        }
    }

    /// The meter provider, for libraries that want their own scope; `None`
    /// when metrics go nowhere.
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.inner.meter_provider.as_ref()
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
        if let Some(mp) = &self.inner.meter_provider {
            let _ = mp.force_flush();
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
                && self.inner.meter_provider.is_none()
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
    if let Some(mp) = inner.meter_provider.clone() {
        if let Ok(mut d) = inner.metric_deadline.lock() {
            *d = Some(deadline);
        }
        if let Some(push) = &inner.metrics_push
            && !push.shutdown(deadline)
        {
            timed_out = true;
        }
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
        if let Err(e) = self.shutdown() {
            // stderr, not tracing: the subscriber may be the thing going away.
            eprintln!("telemetry: {e}");
        }
    }
}

/// Telemetry that is the default subscriber of the current thread until
/// dropped ([`TelemetryBuilder::set_default`](crate::TelemetryBuilder::set_default)):
/// for tests, which must not touch process-wide state. Dropping it restores
/// the previous default, then flushes and shuts down.
#[must_use = "the default subscriber is reset when this guard is dropped"]
pub struct ScopedTelemetry {
    // Declared first: dropped first, so the previous default is back before
    // the flush.
    _default: tracing::dispatcher::DefaultGuard,
    telemetry: Telemetry,
}

impl ScopedTelemetry {
    pub(crate) fn new(telemetry: Telemetry) -> Self {
        let default = tracing::dispatcher::set_default(&telemetry.inner.dispatch);
        ScopedTelemetry {
            _default: default,
            telemetry,
        }
    }
}

impl std::fmt::Debug for ScopedTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ScopedTelemetry")
            .field(&self.telemetry)
            .finish()
    }
}

impl std::ops::Deref for ScopedTelemetry {
    type Target = Telemetry;
    fn deref(&self) -> &Telemetry {
        &self.telemetry
    }
}
